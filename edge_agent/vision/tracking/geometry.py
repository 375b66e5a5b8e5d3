"""Box geometry shared by the tracker's parts: corner and centre forms, overlaps."""

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def xyxy_to_cxcywh(boxes: F32) -> F64:
    b = boxes.astype(np.float64)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] + b[:, 2]) / 2
    out[:, 1] = (b[:, 1] + b[:, 3]) / 2
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    return out


def cxcywh_to_xyxy(state: F64) -> F32:
    cx, cy = state[..., 0], state[..., 1]
    w, h = np.maximum(state[..., 2], 1.0), np.maximum(state[..., 3], 1.0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).astype(np.float32)


def iou_matrix(a: F32, b: F32) -> F64:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ix1 = np.maximum(a64[:, None, 0], b64[None, :, 0])
    iy1 = np.maximum(a64[:, None, 1], b64[None, :, 1])
    ix2 = np.minimum(a64[:, None, 2], b64[None, :, 2])
    iy2 = np.minimum(a64[:, None, 3], b64[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a64[:, 2] - a64[:, 0]) * (a64[:, 3] - a64[:, 1])
    area_b = (b64[:, 2] - b64[:, 0]) * (b64[:, 3] - b64[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def box_cxcywh(box: F32) -> F64:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def box_centre(box: F32) -> tuple[float, float]:
    return (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)


def box_height(box: F32) -> float:
    return max(float(box[3] - box[1]), 1.0)

"""The face picture of an event: the face box plus a margin, clipped to the frame, scaled to fit a
square of ``size`` pixels, JPEG-encoded.

Clipping uses non-negative integer bounds: a box starting left of or above the frame yields the
part inside it, never a slice with a negative start (which numpy reads as "from the other end",
the seed's wrap-around bug).
"""

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def padded_bounds(
    box: npt.ArrayLike, padding: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Integer ``x1, y1, x2, y2`` of ``box`` grown by ``padding`` x its size on every side and
    clipped to the frame; always at least one pixel."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    left = min(max(int(np.floor(x1 - pad_x)), 0), width - 1)
    top = min(max(int(np.floor(y1 - pad_y)), 0), height - 1)
    right = max(min(int(np.ceil(x2 + pad_x)), width), left + 1)
    bottom = max(min(int(np.ceil(y2 + pad_y)), height), top + 1)
    return left, top, right, bottom


def face_crop(frame: U8, box: npt.ArrayLike, *, padding: float, size: int) -> U8:
    """The padded, clipped face region scaled so its longer side is ``size`` (aspect kept).

    Always returns a new array, so it can be kept after the frame buffer is reused.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1 px, got {size}")
    height, width = frame.shape[:2]
    left, top, right, bottom = padded_bounds(box, padding, width, height)
    region = frame[top:bottom, left:right]
    h, w = region.shape[:2]
    scale = size / max(h, w)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    if target == (w, h):
        return region.copy()
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(region, target, interpolation=interpolation))


def encode_jpeg(image: U8, quality: int) -> bytes:
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1-100, got {quality}")
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())

"""Person (body) detection: NanoDet-m on onnxruntime behind the same protocol as the faces.

A person detector returns :class:`~edge_agent.vision.detection.Detections` whose boxes are
bodies and whose landmarks are NaN, so the tracker, the cadence and the drawing treat bodies
and faces alike.

NanoDet-m (COCO, Apache-2.0) is fed a letterboxed frame: scaled so its longer side is
``input_width``, padded at the bottom/right to a multiple of 32 (the head's largest stride).
A 1280x720 frame becomes 416x256 rather than a 416x416 square: people keep their proportions and
the network sees 40 % fewer pixels. Decoding follows the model's head: per stride 8/16/32 a cell
holds 80 class scores and, per box side, a distribution over 11 distance bins (the distance is
its expectation times the stride). Only class 0 (person) is read.
"""

import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.detection import Detections
from footfall.contract import ModelRef, ModelRole

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

STRIDES = (8, 16, 32)
_BINS = 11
_CLASSES = 80
_PERSON = 0
# BGR mean and std the network was trained with; MODELS.md: RGB/255 lost a quarter of the recall.
_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
_INV_STD = 1.0 / np.array([57.375, 57.12, 58.395], np.float32)


def input_shape(width: int, height: int, input_width: int) -> tuple[int, int, float]:
    """Network input (w, h), both multiples of 32, for a ``width`` x ``height`` frame whose
    longer side is scaled to ``input_width``; and the scale (network px per frame px)."""
    scale = min(1.0, input_width / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    pad = STRIDES[-1]
    return -(-w // pad) * pad, -(-h // pad) * pad, scale


def decode(
    outputs: dict[int, tuple[F32, F32]],
    size: tuple[int, int],
    scale: float,
    score_threshold: float,
) -> tuple[F32, F32]:
    """Person boxes (N, 4, network px divided by ``scale``: frame px) and scores (N,) from
    ``outputs[stride] = (class scores (cells, 80), box bins (cells, 44))`` for an input of
    ``size`` (w, h). Before NMS."""
    boxes, scores = [], []
    for stride, (cls, reg) in outputs.items():
        cols = size[0] // stride
        s = cls[:, _PERSON]
        keep = np.flatnonzero(s >= score_threshold)
        if not len(keep):
            continue
        bins = reg[keep].reshape(-1, 4, _BINS)
        p = np.exp(bins - bins.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        dist = (p @ np.arange(_BINS, dtype=np.float32)) * stride  # (k, 4): left, top, right, bottom
        cx = (keep % cols + 0.5) * stride
        cy = (keep // cols + 0.5) * stride
        boxes.append(
            np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
        )
        scores.append(s[keep])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return (
        (np.concatenate(boxes) / scale).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
    )


def nms(
    boxes: F32, scores: F32, score_threshold: float, iou_threshold: float
) -> npt.NDArray[np.intp]:
    """Indices kept by OpenCV's non-maximum suppression, best first."""
    if len(boxes) == 0:
        return np.zeros((0,), np.intp)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_threshold, iou_threshold)
    return np.asarray(kept, np.intp).reshape(-1)


class NanoDetDetector:
    """NanoDet-m person detector (onnxruntime, CPU).

    ``threads`` is onnxruntime's intra-op thread count: 1 on an agent, where the capture, the
    sender and the uploader share the CPU, and measured so (edge_agent/evaluation/results).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        input_width: int = 416,
        score_threshold: float = 0.35,
        nms_threshold: float = 0.5,
        threads: int = 1,
        model: ModelRef | None = None,
    ) -> None:
        if not 64 <= input_width <= 1920:
            raise ValueError(f"input_width must be within 64-1920 px, got {input_width}")
        if not 0.0 < score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be within (0, 1], got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be within (0, 1], got {nms_threshold}")
        if not model_path.is_file():
            raise FileNotFoundError(f"NanoDet model not found: {model_path}")
        # Imported here so face mode and the aggregator never load onnxruntime.
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            os.fspath(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.input_width = input_width
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._model = model or ModelRef(role=ModelRole.DETECTOR, name="nanodet-m", version="coco")
        self._blob: F32 | None = None

    @property
    def model(self) -> ModelRef:
        return self._model

    def _prepare(self, frame: U8) -> tuple[F32, tuple[int, int], float]:
        height, width = frame.shape[:2]
        w, h, scale = input_shape(width, height, self.input_width)
        sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
        small = (
            frame
            if (sw, sh) == (width, height)
            else cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_LINEAR)
        )
        if self._blob is None or self._blob.shape[2:] != (h, w):
            self._blob = np.zeros((1, 3, h, w), np.float32)
        blob = self._blob
        # Padding stays at 0 (the mean colour after normalisation): it reads as empty background.
        blob[0, :, :sh, :sw] = ((small.astype(np.float32) - _MEAN) * _INV_STD).transpose(2, 0, 1)
        return blob, (w, h), scale

    def detect(self, frame: U8) -> Detections:
        height, width = frame.shape[:2]
        blob, size, scale = self._prepare(frame)
        raw = self._session.run(self._outputs, {self._input: blob})
        by_shape = {(a.shape[1], a.shape[2]): a[0] for a in raw}
        outputs: dict[int, tuple[F32, F32]] = {}
        for stride in STRIDES:
            cells = (size[0] // stride) * (size[1] // stride)
            outputs[stride] = (by_shape[(cells, _CLASSES)], by_shape[(cells, 4 * _BINS)])
        boxes, scores = decode(outputs, size, scale, self.score_threshold)
        keep = nms(boxes, scores, self.score_threshold, self.nms_threshold)
        return Detections.from_boxes(boxes[keep], scores[keep]).clipped(width, height)

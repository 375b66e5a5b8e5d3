"""Face-detector benchmark on the shared WIDER FACE val subset: precision, recall and average
precision on the easy and medium subsets, for YuNet at several detection sizes and for the
seed's SSD.

The subset's 200 images were stretched to 416x416 by their source; boxes are in those pixels.
Evaluation follows the official WIDER protocol in its essentials: detections sorted by score
are matched greedily to the ground-truth face of highest IoU >= 0.5; faces outside the subset
being scored (and faces marked invalid) are "ignore" faces, and a detection matching one is
neither a true nor a false positive. AP is the area under the interpolated PR curve (all
points). Precision and recall are also given at the operating threshold each detector runs with
in its pipeline (YuNet 0.5, seed SSD 0.8).

YuNet "at width W" means the image is resized to W x W before detection (up or down) and the
boxes mapped back: the same as detecting on a frame whose faces are W/416 times their size here.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.detection import Detections, SsdDetector, YuNetDetector
from edge_agent.vision.tracking import iou_matrix

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

SUBSETS = ("easy", "medium")
MATCH_IOU = 0.5


@dataclass(frozen=True)
class WiderImage:
    name: str
    boxes: npt.NDArray[np.float32]  # (N, 4) x1, y1, x2, y2
    invalid: npt.NDArray[np.bool_]
    keep: dict[str, npt.NDArray[np.bool_]]


def load_wider(folder: Path, limit: int | None = None) -> list[WiderImage]:
    data = json.loads((folder / "gt.json").read_text(encoding="utf-8"))
    out = []
    for name in sorted(data["images"])[:limit]:
        item = data["images"][name]
        xywh = np.asarray(item["boxes_xywh"], np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        n = len(boxes)
        keep = {}
        for subset in SUBSETS:
            mask = np.zeros(n, bool)
            mask[np.asarray(item[f"{subset}_keep_idx"], int)] = True
            keep[subset] = mask
        invalid = np.asarray(item.get("invalid", [0] * n), bool)
        out.append(WiderImage(name, boxes, invalid, keep))
    return out


@dataclass
class _Matches:
    scores: list[float] = field(default_factory=list)
    true_pos: list[bool] = field(default_factory=list)
    faces: int = 0


def _match(det: Detections, image: WiderImage, subset: str, into: _Matches) -> None:
    counted = image.keep[subset] & ~image.invalid
    into.faces += int(counted.sum())
    order = np.argsort(-det.scores)
    iou = iou_matrix(det.boxes[order], image.boxes)
    taken = np.zeros(len(image.boxes), bool)
    for row, d in enumerate(order.tolist()):
        if len(image.boxes) == 0:
            best = -1
        else:
            candidates = np.where(taken, -1.0, iou[row])
            best = int(np.argmax(candidates))
            if candidates[best] < MATCH_IOU:
                best = -1
        if best >= 0:
            taken[best] = True
            if not counted[best]:
                continue  # an ignore face: neither right nor wrong
            into.scores.append(float(det.scores[d]))
            into.true_pos.append(True)
        else:
            into.scores.append(float(det.scores[d]))
            into.true_pos.append(False)


def average_precision(
    scores: list[float], true_pos: list[bool], faces: int
) -> tuple[float, F64, F64]:
    """AP (all-point interpolation) and the PR curve (precision, recall per detection)."""
    if faces == 0 or not scores:
        return 0.0, np.zeros(0), np.zeros(0)
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(true_pos, np.float64)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / faces
    precision = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0.0], recall, [recall[-1]]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    return ap, precision, recall


@dataclass
class DetectorScore:
    detector: str
    subset: str
    faces: int
    ap: float
    operating_threshold: float
    precision: float  # at the operating threshold
    recall: float
    max_recall: float  # at the lowest threshold run
    ms_per_image: float
    pr_curve: list[tuple[float, float, float]]  # (threshold, precision, recall), thinned


def _score(name: str, subset: str, m: _Matches, threshold: float, ms: float) -> DetectorScore:
    ap, precision, recall = average_precision(m.scores, m.true_pos, m.faces)
    s = np.sort(np.asarray(m.scores))[::-1]
    at = int(np.sum(s >= threshold)) - 1
    curve = []
    if len(s):
        for q in np.linspace(0, len(s) - 1, min(len(s), 25)).astype(int):
            curve.append(
                (round(float(s[q]), 3), round(float(precision[q]), 4), round(float(recall[q]), 4))
            )
    return DetectorScore(
        detector=name,
        subset=subset,
        faces=m.faces,
        ap=round(ap, 4),
        operating_threshold=threshold,
        precision=round(float(precision[at]), 4) if at >= 0 else 0.0,
        recall=round(float(recall[at]), 4) if at >= 0 else 0.0,
        max_recall=round(float(recall[-1]), 4) if len(recall) else 0.0,
        ms_per_image=round(ms, 2),
        pr_curve=curve,
    )


Detect = Callable[[U8], Detections]


def yunet_at(model: Path, width: int, score_threshold: float = 0.1) -> Detect:
    detector = YuNetDetector(model, input_width=max(width, 64), score_threshold=score_threshold)

    def detect(image: U8) -> Detections:
        h, w = image.shape[:2]
        scale = width / w
        resized = cv2.resize(
            image,
            (width, round(h * scale)),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        det = detector.detect(np.asarray(resized, np.uint8))
        return Detections(det.boxes / scale, det.scores, det.landmarks / scale)

    return detect


def ssd(model: Path, config: Path, score_threshold: float = 0.1) -> Detect:
    return SsdDetector(model, config, score_threshold=score_threshold).detect


def bench_detectors(
    wider_dir: Path,
    detectors: dict[str, tuple[Detect, float]],
    *,
    limit: int | None = None,
) -> list[DetectorScore]:
    """Score each detector (name -> (detect function, operating threshold)) on the subset."""
    images = load_wider(wider_dir, limit)
    pictures = {}
    for image in images:
        pic = cv2.imread(str(wider_dir / "images" / image.name))
        if pic is None:
            raise FileNotFoundError(f"cannot read {wider_dir / 'images' / image.name}")
        pictures[image.name] = np.asarray(pic, np.uint8)
    out = []
    for name, (detect, threshold) in detectors.items():
        matches = {subset: _Matches() for subset in SUBSETS}
        seconds = 0.0
        for image in images:
            t0 = time.perf_counter()
            det = detect(pictures[image.name])
            seconds += time.perf_counter() - t0
            for subset in SUBSETS:
                _match(det, image, subset, matches[subset])
        ms = 1000 * seconds / max(len(images), 1)
        out += [_score(name, subset, matches[subset], threshold, ms) for subset in SUBSETS]
    return out


def standard_detectors(
    models_dir: Path, widths: tuple[int, ...] = (208, 320, 416, 640)
) -> dict[str, tuple[Detect, float]]:
    yunet = models_dir / "face_detection_yunet_2023mar.onnx"
    out: dict[str, tuple[Detect, float]] = {f"yunet@{w}": (yunet_at(yunet, w), 0.5) for w in widths}
    out["ssd (seed)"] = (
        ssd(
            models_dir / "opencv_face_detector_uint8.pb", models_dir / "opencv_face_detector.pbtxt"
        ),
        0.8,
    )
    return out


def markdown(scores: list[DetectorScore], note: str) -> str:
    lines = [
        "# Face detectors on the WIDER FACE val subset",
        "",
        note,
        "",
        "| detector | subset | faces | AP % | threshold | precision % | recall % | max recall % | ms/image |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.detector} | {s.subset} | {s.faces} | {100 * s.ap:.1f} | {s.operating_threshold} "
            f"| {100 * s.precision:.1f} | {100 * s.recall:.1f} | {100 * s.max_recall:.1f} "
            f"| {s.ms_per_image:.1f} |"
        )
    return "\n".join(lines) + "\n"


def to_json(scores: list[DetectorScore], meta: dict[str, object]) -> str:
    return json.dumps({"meta": meta, "scores": [asdict(s) for s in scores]}, indent=2)

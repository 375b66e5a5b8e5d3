"""Synthetic faces for unit tests: people who walk, pause and vanish on a scripted timeline, and
frames to match. Imported by the unit tests as a plain module (tests/unit is on the path)."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.vision.detection import Detections
from edge_agent.vision.tracking import ByteTracker

# A frontal face's landmarks as fractions of its box (the layout a detector reports).
FACE_LANDMARKS = np.array(
    [[0.30, 0.38], [0.70, 0.38], [0.50, 0.57], [0.33, 0.72], [0.67, 0.72]], np.float32
)


@dataclass
class Walker:
    """One face: centre at ``start + velocity * (t - t0)`` from ``t0`` to ``t1``, missed by the
    detector during ``gaps`` (half-open intervals)."""

    name: str
    start: tuple[float, float]
    velocity: tuple[float, float]
    t0: float
    t1: float
    size: float = 60.0
    score: float = 0.9
    gaps: list[tuple[float, float]] = field(default_factory=list)
    jitter: float = 0.0
    score_at: Callable[[float], float] | None = None

    def visible(self, t: float) -> bool:
        return self.t0 <= t <= self.t1 and not any(a <= t < b for a, b in self.gaps)

    def center(self, t: float) -> tuple[float, float]:
        dt = t - self.t0
        return self.start[0] + self.velocity[0] * dt, self.start[1] + self.velocity[1] * dt


@dataclass(frozen=True)
class SyntheticFrame:
    t: float
    detections: Detections
    owners: list[str]  # walker name of each detection


def face_detections(
    walkers: list[Walker], t: float, rng: np.random.Generator | None = None
) -> SyntheticFrame:
    boxes, scores, owners, landmarks = [], [], [], []
    for w in walkers:
        if not w.visible(t):
            continue
        cx, cy = w.center(t)
        if w.jitter and rng is not None:
            cx += float(rng.normal(0, w.jitter))
            cy += float(rng.normal(0, w.jitter))
        half = w.size / 2
        box = np.array([cx - half, cy - half, cx + half, cy + half], np.float32)
        boxes.append(box)
        landmarks.append(FACE_LANDMARKS * w.size + box[:2])
        scores.append(w.score_at(t) if w.score_at else w.score)
        owners.append(w.name)
    return SyntheticFrame(t, Detections.from_boxes(boxes, scores, landmarks), owners)


def timeline(
    walkers: list[Walker], *, fps: float, duration: float, seed: int = 0
) -> list[SyntheticFrame]:
    rng = np.random.default_rng(seed)
    return [face_detections(walkers, k / fps, rng) for k in range(round(duration * fps) + 1)]


def run_tracker(
    tracker: ByteTracker, frames: list[SyntheticFrame]
) -> tuple[dict[str, set[int]], list[int]]:
    """Feed every frame; return the confirmed track ids each walker got, and every confirmed id
    that ended (in order, including those ended by ``finish``)."""
    ids: dict[str, set[int]] = {}
    ended: list[int] = []
    for frame in frames:
        step = tracker.update(frame.detections, frame.t)
        ended += [e.track_id for e in step.ended if e.confirmed]
        m = step.matched
        for tid, di, conf in zip(m.track_ids, m.det_index, m.confirmed, strict=True):
            if conf:
                ids.setdefault(frame.owners[di], set()).add(int(tid))
    ended += [e.track_id for e in tracker.finish() if e.confirmed]
    return ids, ended


def face_image(
    width: int,
    height: int,
    boxes: npt.NDArray[np.float32],
    seed: int = 0,
    background: int = 110,
) -> npt.NDArray[np.uint8]:
    """A frame with a textured, face-like blob in every box (sharp, contrasted, with eyes and a
    mouth where the landmarks say), on a flat grey background."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), background, np.uint8)
    for box in boxes:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, width), min(y2, height)
        if x2 <= x1 or y2 <= y1:
            continue
        patch = rng.integers(150, 230, (y2 - y1, x2 - x1, 3), dtype=np.uint8)
        img[y1:y2, x1:x2] = patch
        size = float(box[2] - box[0])
        for fx, fy in FACE_LANDMARKS:
            px, py = int(box[0] + fx * size), int(box[1] + fy * size)
            r = max(1, int(size * 0.06))
            img[max(py - r, 0) : py + r, max(px - r, 0) : px + r] = 20
    return img

"""The seed-style configuration: the original project's pipeline, rebuilt from its parts so it
can be scored on the same scenarios and timed in the same run as ours.

What "seed-style" means here, exactly:

- detector: the ResNet-10 SSD (8-bit TensorFlow weights) on a 300x300 blob of every frame,
  detections kept at score >= 0.8; no landmarks, so chips are aligned from fixed positions in
  the box (:func:`models.runtime.alignment.landmarks_from_box`);
- tracker: a centroid tracker (:class:`CentroidTracker`). Every detector frame, existing objects
  take the nearest detection centres greedily with no distance limit; an object unmatched for
  more than 40 frames is dropped. Without a distance limit an object that vanished is still
  matched by whoever appears next anywhere in the frame within those 40 frames: stale ids are
  reused by new people. A track is "mature" (a person) once matched in 3 frames;
- classification: once per person from one face, the first observation of the mature track
  (K = 1, no quality threshold, no averaging, no flip);
- counting: the same counting line as ours, without hysteresis (the first side change counts).
  The seed's own rule (the direction of centroid movement at the line) is not reproduced.

Everything else (the event format, crops, scene cuts) is our pipeline's, so differences in the
scores come from detector, tracker and face choice.
"""

import itertools
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from edge_agent.config import AgentConfig
from edge_agent.vision.appearance import Descriptors
from edge_agent.vision.best_faces import FirstFaces
from edge_agent.vision.detection import Detections, FaceDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import DetectorKind, TrackerSettings
from edge_agent.vision.tracking import EndedTrack, MatchedTracks, TrackerStep, TrackSnapshot
from models.runtime.classifier import FaceClassifier

F32 = npt.NDArray[np.float32]

SEED_SCORE_THRESHOLD = 0.8
SEED_MAX_DISAPPEARED = 40
SEED_MATURE_HITS = 3


class _Object:
    __slots__ = ("box", "first_box", "first_seen", "hits", "id", "last_seen", "missed")

    def __init__(self, object_id: int, box: F32, t: float) -> None:
        self.id = object_id
        self.box = box.copy()
        self.first_box = box.copy()
        self.first_seen = t
        self.last_seen = t
        self.hits = 1
        self.missed = 0

    @property
    def mature(self) -> bool:
        return self.hits >= SEED_MATURE_HITS

    def centre(self) -> tuple[float, float]:
        return (float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2)


class CentroidTracker:
    """Nearest-centroid tracking in frames, no motion model and no distance gate (see module)."""

    def __init__(
        self,
        *,
        max_disappeared: int = SEED_MAX_DISAPPEARED,
        track_ids: Iterator[int] | None = None,
    ) -> None:
        if max_disappeared < 0:
            raise ValueError(f"max_disappeared must be >= 0, got {max_disappeared}")
        self.max_disappeared = max_disappeared
        self._ids = track_ids if track_ids is not None else itertools.count(1)
        self._objects: list[_Object] = []
        self._now = 0.0

    def __len__(self) -> int:
        return len(self._objects)

    @staticmethod
    def _ended(obj: _Object) -> EndedTrack:
        return EndedTrack(
            track_id=obj.id,
            confirmed=obj.mature,
            first_seen=obj.first_seen,
            last_seen=obj.last_seen,
            hits=obj.hits,
            first_box=obj.first_box,
            last_box=obj.box.copy(),
        )

    @property
    def wants_appearance(self) -> bool:
        return False  # the seed matched on position alone

    def update(
        self, detections: Detections, t: float, appearance: Descriptors | None = None
    ) -> TrackerStep:
        self._now = max(self._now, t)
        boxes = detections.boxes
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 if len(boxes) else np.zeros((0, 2))
        matched: list[tuple[_Object, int]] = []
        used_rows: set[int] = set()
        used_cols: set[int] = set()
        if self._objects and len(boxes):
            current = np.array([o.centre() for o in self._objects])
            dist = np.linalg.norm(current[:, None, :] - centres[None, :, :], axis=2)
            # The classic greedy order: objects by their nearest detection, each takes its
            # nearest free one.
            rows = dist.min(axis=1).argsort()
            cols = dist.argmin(axis=1)[rows]
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if r in used_rows or c in used_cols:
                    continue
                used_rows.add(r)
                used_cols.add(c)
                matched.append((self._objects[r], c))
        for obj, c in matched:
            obj.box = boxes[c].copy()
            obj.last_seen = t
            obj.hits += 1
            obj.missed = 0
        ended: list[EndedTrack] = []
        kept: list[_Object] = []
        for i, obj in enumerate(self._objects):
            if i not in used_rows:
                obj.missed += 1
                if obj.missed > self.max_disappeared:
                    ended.append(self._ended(obj))
                    continue
            kept.append(obj)
        new = [
            _Object(next(self._ids), boxes[c], t) for c in range(len(boxes)) if c not in used_cols
        ]
        self._objects = kept + new
        # Only mature tracks report observations: the seed classified the first mature frame.
        # (A new object has one hit, so it is never mature yet.)
        pairs = [(o, c) for o, c in matched if o.mature]
        result = MatchedTracks(
            np.array([o.id for o, _ in pairs], np.int64),
            np.array([c for _, c in pairs], np.intp),
            np.ones(len(pairs), bool),
        )
        return TrackerStep(matched=result, ended=tuple(ended))

    def tick(self, t: float) -> tuple[EndedTrack, ...]:
        self._now = max(self._now, t)
        return ()

    def finish(self) -> tuple[EndedTrack, ...]:
        ended = tuple(self._ended(o) for o in self._objects)
        self._objects = []
        return ended

    def snapshot(self, t: float | None = None) -> TrackSnapshot:
        objs = self._objects
        return TrackSnapshot(
            track_ids=np.array([o.id for o in objs], np.int64),
            boxes=np.stack([o.box for o in objs]) if objs else np.zeros((0, 4), np.float32),
            confirmed=np.array([o.mature for o in objs], bool),
            seen_now=np.array([o.missed == 0 and o.last_seen == self._now for o in objs], bool),
        )

    def configure(self, settings: TrackerSettings) -> None:
        """The seed had no remote configuration; its tracker keeps its fixed rules."""


def seed_config(base: AgentConfig) -> AgentConfig:
    """``base`` with the seed's detector, counting and classification settings."""
    return base.model_copy(
        update={
            "detector": base.detector.model_copy(
                update={
                    "kind": DetectorKind.SSD,
                    "score_threshold": SEED_SCORE_THRESHOLD,
                    "detect_every_n_frames": 1,
                    "max_detections_per_second": 0.0,
                }
            ),
            "counting": base.counting.model_copy(update={"hysteresis": 0.0}),
            "classifier": base.classifier.model_copy(
                # The seed classified every face it kept: no expected-accuracy level either.
                update={
                    "k_best": 1,
                    "min_quality": 0.0,
                    "min_expected_accuracy": 0.5,
                    "flip_average": False,
                }
            ),
        }
    )


def seed_pipeline(
    config: AgentConfig,
    *,
    detector: FaceDetector,
    classifier: FaceClassifier,
    track_ids: Iterator[int] | None = None,
) -> Pipeline:
    """The seed-style pipeline; ``detector`` should be the SSD built from :func:`seed_config`."""
    cfg = seed_config(config)
    return Pipeline(
        detector=detector,
        classifier=classifier,
        address=cfg.address,
        tracker=cfg.tracker,
        counting=cfg.counting,
        classify=cfg.classifier,
        crops=cfg.crops,
        detect_every_n_frames=1,
        track_with=CentroidTracker(track_ids=track_ids),
        face_keeper=FirstFaces,
    )

"""What a tracker returns, and the :class:`Tracker` protocol the pipeline needs."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.vision.appearance import (
    Descriptors,
)
from edge_agent.vision.detection import Detections
from edge_agent.vision.settings import TrackerSettings
from edge_agent.vision.tracking.geometry import (
    F32,
)


@dataclass(frozen=True)
class MatchedTracks:
    """Tracks that took a detection in this update: parallel arrays."""

    track_ids: npt.NDArray[np.int64]
    det_index: npt.NDArray[np.intp]
    confirmed: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        if len(self.det_index) != n or len(self.confirmed) != n:
            raise ValueError("track_ids, det_index and confirmed must have the same length")

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> "MatchedTracks":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.intp), np.zeros(0, bool))


@dataclass(frozen=True)
class EndedTrack:
    """A track that is over. ``confirmed`` tracks are people; the others were false detections."""

    track_id: int
    confirmed: bool
    first_seen: float
    last_seen: float
    hits: int
    first_box: F32
    last_box: F32


@dataclass(frozen=True)
class TrackerStep:
    matched: MatchedTracks
    ended: tuple[EndedTrack, ...]


@dataclass(frozen=True)
class TrackSnapshot:
    """Every live track's predicted box at one instant, for drawing and inspection."""

    track_ids: npt.NDArray[np.int64]
    boxes: F32
    confirmed: npt.NDArray[np.bool_]
    seen_now: npt.NDArray[np.bool_]


class Tracker(Protocol):
    """What the pipeline needs from a multi-face tracker (:class:`ByteTracker`; the evaluation
    plugs a seed-style centroid tracker in here to compare against)."""

    @property
    def wants_appearance(self) -> bool:
        """Whether :meth:`update` uses appearance descriptors (the caller computes them only
        then)."""
        ...

    def update(
        self, detections: Detections, t: float, appearance: Descriptors | None = None
    ) -> TrackerStep:
        """Advance to ``t`` (seconds) and take the detections of a frame run through the
        detector, with their appearance descriptors if :attr:`wants_appearance`."""
        ...

    def tick(self, t: float) -> tuple[EndedTrack, ...]:
        """Advance to ``t`` on a frame the detector skipped."""
        ...

    def finish(self) -> tuple[EndedTrack, ...]:
        """End every track (end of stream)."""
        ...

    def snapshot(self, t: float | None = None) -> TrackSnapshot:
        """Every live track's box at ``t``, without changing state."""
        ...

    def configure(self, settings: TrackerSettings) -> None:
        """Take new thresholds and absence window (remote configuration), keeping live tracks."""
        ...

    def __len__(self) -> int: ...

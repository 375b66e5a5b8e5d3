"""Following faces from frame to frame: a constant-velocity Kalman filter per track and optimal
(Hungarian) assignment, associating high-score detections first and low-score ones second (the
ByteTrack idea: a face that blurs or turns keeps its track through a weak detection instead of
losing it).

Everything runs in stream time (seconds), not frames: the Kalman filter integrates over the real
interval between detections (so detecting every n-th frame, a dropped frame or a variable frame
rate change nothing), and a track survives an absence up to ``max_absence_seconds`` and is retired
after it. A reappearance after a gap is matched by the motion model's prediction and its growing
uncertainty, capped at ``reid_max_distance`` face heights.

Appearance (optional: ``update`` takes per-detection descriptors from
:mod:`edge_agent.vision.appearance`) covers what motion cannot. Each track keeps a running average of
its descriptor from clean, confident observations. A track that was lost (not seen at the
previous detector run) may take a detection by overlap or motion only if they do not look
clearly different (``appearance_veto_distance``): two people who swapped places while hidden
keep their own ids. And when a new track is about to become a person, it is first compared with
the confirmed tracks lost within the absence window: if it looks like one of them
(``appearance_max_distance``), could have walked from where that one was last seen in the time
(``reid_max_speed``) and has about the same face size, it is that person coming back: the lost
track takes over its position and keeps its id, first sighting and counting state, and the new
track is dropped as never confirmed.

Per-track state is a fixed handful of numbers and one small descriptor (no history), tracks are
removed when they end and their number is capped, so memory stays flat on a 24/7 stream.
"""

from edge_agent.vision.tracking.bytetrack import ByteTracker
from edge_agent.vision.tracking.geometry import cxcywh_to_xyxy, iou_matrix, xyxy_to_cxcywh
from edge_agent.vision.tracking.records import (
    EndedTrack,
    MatchedTracks,
    Tracker,
    TrackerStep,
    TrackSnapshot,
)

__all__ = [
    "ByteTracker",
    "EndedTrack",
    "MatchedTracks",
    "TrackSnapshot",
    "Tracker",
    "TrackerStep",
    "cxcywh_to_xyxy",
    "iou_matrix",
    "xyxy_to_cxcywh",
]

"""The settings an operator may change on a running agent, each declared once.

A remote configuration (:mod:`footfall.remote_config`) carries these sections; the agent's own
configuration is built on them: the counting, tracker and crop sections are the same classes,
and the agent's detector, classifier and delivery sections extend the remote parts here (the
detector's cadence, the classifier's thresholds, the heartbeat interval) with what only the
agent's file may change. They live in the core because both sides read them: the agent applies
them, and the aggregator's ``fleet push-config`` checks a file against them before publishing.
"""

from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, model_validator

from footfall.connections import Section

Point = tuple[float, float]


class DetectorCadence(Section):
    """How often the detector runs: the part of the detector settings a running agent may be
    sent, and the base of the agent's full detector settings."""

    max_detections_per_second: float = Field(
        default=12.0,
        ge=0.0,
        le=120.0,
        description="Run the detector at most this often in stream time: on a frame only when "
        "at least 1/rate seconds (less 10% for timestamp jitter) passed since its last run; the "
        "tracker predicts in between. The same rate whatever the camera sends (a 12 fps camera: "
        "every frame; 25 fps: every 2nd). 0 = every frame",
    )
    detect_every_n_frames: int = Field(
        default=1,
        ge=1,
        le=30,
        description="Also run the detector on at most every n-th frame (counted in frames, so its "
        "effect depends on the camera's frame rate; prefer max_detections_per_second)",
    )


class TrackerSettings(Section):
    """Following each person from frame to frame (Kalman filter + Hungarian assignment)."""

    max_absence_seconds: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        description="A person unseen for longer than this (stream time) is finished and emitted; "
        "a reappearance within it keeps the id",
    )
    high_score: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="Detections at or above this score are matched first and may start tracks",
    )
    low_score: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Detections between this and high_score only extend existing tracks",
    )
    match_iou: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Least overlap between a predicted box and a high-score detection to match",
    )
    low_match_iou: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Least overlap for a low-score detection to extend a track",
    )
    reid_max_distance: float = Field(
        default=4.0,
        ge=0.0,
        le=50.0,
        description="After a gap, a detection may resume a track only if it is within this many "
        "face heights of where the motion model expects it (and within its uncertainty)",
    )
    min_hits: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Detections a new track needs before it counts as a person",
    )
    confirm_within_seconds: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="A new track that does not reach min_hits within this time is dropped as a "
        "false detection",
    )
    scene_cut_threshold: float = Field(
        default=20.0,
        ge=0.0,
        le=255.0,
        description="A frame whose mean grey level (on a 32x24 thumbnail) changed by more than "
        "this from the previous one is a scene cut (edited footage, a bumped camera): every "
        "track ends there, since nothing can be matched across it. 0 disables",
    )
    max_tracks: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Cap on live tracks; keeps memory flat even if the detector goes wild",
    )
    appearance_reid: bool = Field(
        default=True,
        description="Use appearance (colour of hair, face and clothes, a coarse face pattern) to "
        "give a person who comes back within max_absence_seconds their id again, and to keep a "
        "lost track from taking a detection that looks clearly different",
    )
    appearance_max_distance: float = Field(
        default=1.0,
        ge=0.0,
        le=10.0,
        description="A new track is a lost person coming back only if their appearance distance "
        "is at most this (1 = as alike as the closest 5% of strangers)",
    )
    appearance_veto_distance: float = Field(
        default=2.5,
        ge=0.0,
        le=10.0,
        description="A lost track may not take a detection by overlap or motion whose "
        "appearance distance exceeds this",
    )
    motion_veto_distance: float = Field(
        # 10 = the same as appearance_veto_distance's never-stricter default: faces unchanged.
        default=10.0,
        ge=0.0,
        le=10.0,
        description="A lost track resumed by the motion model alone (no overlap with its "
        "predicted box) may not take a detection whose appearance distance exceeds this "
        "(10 = only appearance_veto_distance applies)",
    )
    appearance_weight: float = Field(
        # Off for faces (not measured on the face scenarios); person mode sets its own.
        default=0.0,
        ge=0.0,
        le=2.0,
        description="Where tracks and detections overlap ambiguously (people crossing), how "
        "much appearance adds to box overlap in matching them (0 = overlap alone)",
    )
    reid_max_speed: float = Field(
        default=6.0,
        ge=0.0,
        le=100.0,
        description="A lost person may come back at most this many face heights per second of "
        "absence (plus one) from where they were last seen",
    )

    @model_validator(mode="after")
    def _score_order(self) -> Self:
        check_score_order(self.low_score, self.high_score)
        return self


def check_score_order(low: float, high: float) -> None:
    """ByteTrack's two thresholds: the second-chance pass must not start above the first."""
    if low > high:
        raise ValueError(f"low_score ({low}) must not exceed high_score ({high})")


class CountingMode(StrEnum):
    LINE = "line"
    EDGES = "edges"


class Units(StrEnum):
    FRACTION = "fraction"
    PIXELS = "pixels"


Edge = Literal["left", "right", "top", "bottom"]

_EDGE_VECTORS: dict[str, Point] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "top": (0.0, -1.0),
    "bottom": (0.0, 1.0),
}


class CountingSettings(Section):
    """How a person's direction is decided: crossing a line, or the frame edges they used."""

    mode: CountingMode = Field(
        default=CountingMode.LINE,
        description="line: in/out by crossing `line`; edges: in/out by entry and exit edge",
    )
    units: Units = Field(
        default=Units.FRACTION,
        description="Units of `line` and `hysteresis`: fractions of the frame (0-1) or pixels "
        "(checked against the frame size when the first frame arrives)",
    )
    line: tuple[Point, Point] = Field(
        default=((0.5, 0.0), (0.5, 1.0)),
        description="Counting line as two points [[x1, y1], [x2, y2]]; default: vertical centre",
    )
    in_towards: Edge = Field(
        default="right",
        description="Crossing the line towards this side of the frame counts as 'in'",
    )
    hysteresis: float = Field(
        default=0.04,
        ge=0.0,
        description="A crossing counts only once the face is this far past the line (fraction "
        "of the frame's shorter side, or pixels), so jitter at the line never double counts",
    )
    edge_margin: float = Field(
        default=0.08,
        ge=0.0,
        le=0.5,
        description="A track that starts or ends within this fraction of the frame size from an "
        "edge entered or left by that edge; otherwise its side is 'middle'",
    )
    in_from: Edge = Field(
        default="left", description="edges mode: entering by this edge and leaving by in_to is 'in'"
    )
    in_to: Edge = Field(
        default="right", description="edges mode: the reverse path (in_to -> in_from) is 'out'"
    )

    @model_validator(mode="after")
    def _geometry(self) -> Self:
        (x1, y1), (x2, y2) = self.line
        if (x1, y1) == (x2, y2):
            raise ValueError("line needs two different points")
        if self.units is Units.FRACTION:
            if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
                raise ValueError("line points must be within 0-1 when units = 'fraction'")
            if self.hysteresis > 0.5:
                raise ValueError("hysteresis must be at most 0.5 when units = 'fraction'")
        elif min(x1, y1, x2, y2) < 0:
            raise ValueError("line points in pixels must not be negative")
        dx, dy = x2 - x1, y2 - y1
        vx, vy = _EDGE_VECTORS[self.in_towards]
        length = (dx * dx + dy * dy) ** 0.5
        # The "in" direction must actually cross the line: a horizontal line cannot have its
        # inside to the left. sin(angle) below ~0.1 (about 6 degrees) is treated as parallel.
        if abs(dx * vy - dy * vx) / length < 0.1:
            raise ValueError(
                f"in_towards = {self.in_towards!r} runs along the line; pick a side the line "
                "separates (e.g. top/bottom for a horizontal line)"
            )
        if self.in_from == self.in_to:
            raise ValueError("in_from and in_to must be different edges")
        return self


class CropPolicy(StrEnum):
    KEEP = "keep"
    DROP = "drop"


class CropSettings(Section):
    """The face picture that goes with each event."""

    policy: CropPolicy = Field(
        default=CropPolicy.KEEP,
        description="keep: one JPEG of the best face per person; drop: no face image ever leaves "
        "the pipeline",
    )
    padding: float = Field(
        default=0.3,
        ge=0.0,
        le=2.0,
        description="Margin added on every side, as a fraction of the face box size",
    )
    size: int = Field(default=128, ge=16, le=1024, description="Longer side of the crop in pixels")
    jpeg_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality (10-100)")


class RemoteClassifierSettings(Section):
    """The classifier keys a running agent may be sent: its thresholds (not the models, which
    only the agent's own file changes). The base of the agent's full classifier settings."""

    k_best: int = Field(
        default=5, ge=1, le=32, description="Best face observations kept per person and averaged"
    )
    min_expected_accuracy: float = Field(
        # 0.8: on single UTKFace val faces spoiled like a camera's it judges 89 % of them at
        # 88 % gender accuracy (the previous ramps: 67 % at 91 %); 0.85 keeps 91 % but judges
        # only 60 %, and on the Hamilton clip 2 of 7 people instead of 5 (results/quality.md).
        default=0.8,
        ge=0.5,
        le=1.0,
        description="A person whose best face's expected gender accuracy (fitted from its size, "
        "pose, sharpness, contrast and detector score) is below this is reported as unknown; "
        "0.5 judges everyone with a face",
    )
    min_quality: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Observations whose expected accuracy (0.5-1) is below this are left out of "
        "a person's estimate; the default 0.5 leaves none out (before expected accuracies, this "
        "was a 0-1 ramp score with default 0.3: values up to 0.5 now have no effect)",
    )
    min_gender_confidence: float = Field(
        # The probability is calibrated (the model's gender_temperature): at 0.6 the scenario
        # suite leaves 5.6 % of people unknown with Cydral calibrated, 3.2 % with its raw
        # probability; at 0.5 none either way (edge_agent/evaluation/results/quality.md).
        default=0.5,
        ge=0.5,
        le=1.0,
        description="Below this combined, calibrated probability of the label the gender is "
        "reported as unknown; the default 0.5 never does, leaving the decision to "
        "min_expected_accuracy",
    )


class RemoteDeliverySettings(Section):
    """The delivery keys a running agent may be sent; the base of the agent's delivery
    settings."""

    heartbeat_seconds: float = Field(
        default=60.0, ge=0.5, le=3600.0, description="Interval of the heartbeat (AgentStatus)"
    )

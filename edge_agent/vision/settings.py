"""Configuration sections of the vision pipeline: source, detector, tracker, counting, classifier
and crops. ``AgentConfig`` (``edge_agent/config.py``) holds one of each; every default works
without a file.

They live apart from ``config.py`` so the delivery sections (mqtt, s3, outbox) and these can
change without touching each other. What an operator may also change on a running agent (the
tracker, counting and crop sections, the detector's cadence, the classifier's thresholds) is
declared once, in :mod:`footfall.remote_settings`, which the aggregator reads too; the detector
and classifier sections here extend those parts.
"""

from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from footfall.connections import Section
from footfall.remote_settings import (
    CountingMode,
    CountingSettings,
    CropPolicy,
    CropSettings,
    DetectorCadence,
    Edge,
    Point,
    RemoteClassifierSettings,
    TrackerSettings,
    Units,
    check_score_order,
)
from models.selection import DEFAULT_AGE_MODEL, DEFAULT_GENDER_MODEL, check_selection

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")


def video_file(spec: str) -> Path | None:
    """The video file ``spec`` names, or None for a camera index ("0") or a stream URL."""
    if spec.isdigit() or spec.split("://", 1)[0].lower() in STREAM_SCHEMES:
        return None
    return Path(spec)


class SourceSettings(Section):
    """Where frames come from when the agent runs live (``process`` takes clips instead)."""

    url: str | None = Field(
        default=None,
        description="RTSP/HTTP URL, a video file path, or a camera index such as '0'",
    )
    queue_frames: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Frames buffered between capture and processing; when processing falls "
        "behind on a live source the oldest is dropped (and counted)",
    )
    reconnect_min_seconds: float = Field(
        default=1.0, gt=0, le=60, description="First wait before reopening a lost live source"
    )
    reconnect_max_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait between reopen attempts (backoff cap)",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_min_seconds > self.reconnect_max_seconds:
            raise ValueError(
                f"reconnect_min_seconds ({self.reconnect_min_seconds}) must not exceed "
                f"reconnect_max_seconds ({self.reconnect_max_seconds})"
            )
        return self


class DetectorKind(StrEnum):
    YUNET = "yunet"
    SSD = "ssd"


class DetectorSettings(DetectorCadence):
    """Face detection."""

    kind: DetectorKind = Field(
        default=DetectorKind.YUNET,
        description="yunet (default: boxes + 5 landmarks) or ssd (the seed's ResNet-10 SSD, "
        "kept for comparison; no landmarks, about 10x slower)",
    )
    yunet_model: Literal["yunet", "yunet-n"] = Field(
        default="yunet",
        description="Manifest name of the YuNet weights: yunet (YuNet-s 2023mar) or yunet-n "
        "(Apache-2.0, same outputs; about 4 points more hard-set AP on WIDER FACE and more faces "
        "under 16 px, about 20 % slower, per the shared model notes; not yet measured on this "
        "pipeline's own scenarios)",
    )
    input_width: int = Field(
        # 640 rather than 320: on the standard scenarios (val faces) it found more of the
        # 40-60 px faces, which cut id switches from 30 to 22 per 100 people, raised direction
        # accuracy from 88% to 94% and age-group exact from 41% to 50%, for about twice the
        # detector time (see edge_agent/evaluation/results).
        default=640,
        ge=64,
        le=3840,
        description="YuNet: frames wider than this are scaled down to it before detection and "
        "boxes are mapped back. Faces smaller than about 10 px at this width are missed and "
        "faces under ~25 px lose gender/age accuracy; lower it (e.g. 320) on a slow CPU when "
        "faces are large. The SSD always uses 300x300",
    )
    score_threshold: float = Field(
        default=0.5,
        ge=0.05,
        le=1.0,
        description="Detections below this score are discarded by the detector",
    )
    nms_threshold: float = Field(
        default=0.3, gt=0.0, le=1.0, description="Overlap above which YuNet suppresses a box"
    )


class PipelineMode(StrEnum):
    PERSON = "person"
    FACE = "face"


class CountPoint(StrEnum):
    FOOT = "foot"
    CENTRE = "centre"


class FaceSearch(StrEnum):
    """Where person mode runs the face detector (see :mod:`edge_agent.vision.face_search`)."""

    FRAME = "frame"
    UPPER_BODY = "upper_body"


class PersonSettings(Section):
    """Person (body) detection and tracking, used when ``mode = "person"``.

    Bodies are tracked instead of faces; the ``tracker`` section still applies, except for the
    scores and distances below, which are in the person detector's units (its scores run lower
    than a face detector's, and a body is about seven face heights tall).
    """

    input_width: int = Field(
        # 320 rather than 416 or 512: on the real clips it found as many people (box recall
        # 0.84 TUD-Stadtmitte, 0.90 vtest vs 0.78 / 0.92 at 416) at about half the time
        # (edge_agent/evaluation/results/person_detectors.md).
        default=320,
        ge=64,
        le=1920,
        description="NanoDet: frames are scaled so their longer side is this (then padded to a "
        "multiple of 32); people shorter than about 1/8 of it are missed",
    )
    score_threshold: float = Field(
        default=0.35, ge=0.05, le=1.0, description="Person detections below this are discarded"
    )
    nms_threshold: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Overlap above which a person box is suppressed"
    )
    high_score: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Person detections at or above this are matched first and may start tracks",
    )
    low_score: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description="Person detections between this and high_score only extend existing tracks",
    )
    reid_max_distance: float = Field(
        default=1.0,
        ge=0.0,
        le=50.0,
        description="After a gap, a body may resume a track only within this many body heights "
        "of where the motion model expects it",
    )
    reid_max_speed: float = Field(
        default=1.5,
        ge=0.0,
        le=100.0,
        description="A lost person may come back at most this many body heights per second of "
        "absence (plus one) from where they were last seen (a walker covers about 0.8)",
    )
    appearance_veto_distance: float = Field(
        # 10 = no veto. Same-person body distances spread wide (their 95th percentile is 2.7,
        # python -m edge_agent.evaluation.body_looks). With 2.75 (footfall-agent eval mot),
        # vtest found 17 of 19 instead of 16 (IDF1 0.636 vs 0.611) but its in/out error rose
        # from 19 % to 31 %; with 2.5 TUD-Stadtmitte lost a walker (9 of 10).
        default=10.0,
        ge=0.0,
        le=10.0,
        description="A lost track may not take a body whose appearance distance exceeds this "
        "(10 = never vetoed; the appearance still helps a returning person get their id back)",
    )
    motion_veto_distance: float = Field(
        # A lost body resumed by the motion model alone (no overlap) matched within 1.02 when it
        # was the same walker and from 1.81 up when it was another one, on PETS vtest's truth.
        # With 1.5 (footfall-agent eval mot): vtest found 17 of 19 instead of 16, IDF1 0.642
        # instead of 0.611, 29 ID switches instead of 31, but 7 walkers split instead of 5 and
        # its in/out error rose from 19 % to 25 %; TUD-Stadtmitte IDF1 0.802 instead of 0.793,
        # counts unchanged. Off by default for the in/out error.
        default=10.0,
        ge=0.0,
        le=10.0,
        description="A lost track resumed by the motion model alone (its predicted box overlaps "
        "no body) may not take a body whose appearance distance exceeds this (10 = no veto "
        "beyond appearance_veto_distance; 1.5 keeps more walkers apart in crowds at the cost of "
        "more split tracks)",
    )
    appearance_weight: float = Field(
        # footfall-agent eval mot, person mode, body descriptor: 0.5 took vtest from 35 to 31
        # ID switches (IDF1 0.588 -> 0.611) and left TUD-Stadtmitte as it was (10 of 10
        # found, 4 switches); 1.0 measured the same.
        default=0.5,
        ge=0.0,
        le=2.0,
        description="Where bodies overlap ambiguously (people crossing), how much appearance "
        "adds to box overlap in matching them (0 = overlap alone)",
    )
    count_point: CountPoint = Field(
        default=CountPoint.FOOT,
        description="The point of the body box that crosses the counting line: foot (bottom "
        "centre, where the person stands) or centre",
    )
    face_region: float = Field(
        default=0.4,
        gt=0.0,
        le=1.0,
        description="A face belongs to a person when its centre lies in this top share of the "
        "person's box",
    )
    face_search: FaceSearch = Field(
        # upper_body: on the real clips it attached faces to as many people or more (vtest 27
        # of 28 people instead of 17, 2397 faces instead of 503; TUD 10 of 10 with a usable face
        # instead of 9), judged the same people with the same genders (Hamilton 5 of 7) plus one
        # on vtest, and its face stage took half to two thirds of the whole-frame one's time
        # (edge_agent/evaluation/results/face_search.md).
        default=FaceSearch.UPPER_BODY,
        description="Where faces are looked for: frame (the whole frame at detector.input_width) "
        "or upper_body (the top face_region of each person's box, enlarged so small faces reach "
        "a size the face detector finds, each face belonging to the person it was found on)",
    )

    @model_validator(mode="after")
    def _score_order(self) -> Self:
        check_score_order(self.low_score, self.high_score)
        if self.low_score < self.score_threshold:
            raise ValueError(
                f"low_score ({self.low_score}) is below score_threshold "
                f"({self.score_threshold}): those detections never reach the tracker"
            )
        return self

    def tracker(self, base: TrackerSettings) -> TrackerSettings:
        """``base`` with the scores and distances of bodies."""
        return base.model_copy(
            update={
                "high_score": self.high_score,
                "low_score": self.low_score,
                "reid_max_distance": self.reid_max_distance,
                "reid_max_speed": self.reid_max_speed,
                "appearance_veto_distance": self.appearance_veto_distance,
                "appearance_weight": self.appearance_weight,
                "motion_veto_distance": self.motion_veto_distance,
            }
        )


class ClassifierSettings(RemoteClassifierSettings):
    """Gender and age group, estimated once per person from their best faces."""

    flip_average: bool = Field(
        default=True,
        description="Also classify the mirrored face and average: measured more accurate on "
        "held-out faces (models/cards/), about 2x the classification cost, once per person",
    )
    gender_model: str = Field(
        default=DEFAULT_GENDER_MODEL, min_length=1, description="Manifest name of the gender model"
    )
    age_model: str = Field(
        default=DEFAULT_AGE_MODEL, min_length=1, description="Manifest name of the age model"
    )
    allow_noncommercial_models: bool = Field(
        default=False,
        description="Allow models whose licence forbids commercial use (e.g. weights trained on "
        "UTKFace); leave false for any commercial deployment",
    )

    @model_validator(mode="after")
    def _licence(self) -> Self:
        check_selection(self.gender_model, self.age_model, self.allow_noncommercial_models)
        return self


# The sections an operator may also change remotely are declared in the core and used here
# under the names the pipeline has always imported them by.
__all__ = [
    "ClassifierSettings",
    "CountPoint",
    "CountingMode",
    "CountingSettings",
    "CropPolicy",
    "CropSettings",
    "DetectorCadence",
    "DetectorKind",
    "DetectorSettings",
    "Edge",
    "FaceSearch",
    "PersonSettings",
    "PipelineMode",
    "Point",
    "SourceSettings",
    "TrackerSettings",
    "Units",
]

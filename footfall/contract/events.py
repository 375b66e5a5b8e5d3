"""``PersonEvent``: one record per person seen at a spot, version 1 of the wire contract.

The device makes the event id (a UUID), so the same person re-sent after an outage, a broker
restart or a replay of a recorded clip is the same row in the store.
"""

from datetime import datetime
from typing import Literal, Self
from uuid import UUID

from pydantic import Field, ValidationInfo, field_validator, model_validator

from footfall.contract.types import (
    INT64_MAX,
    Note,
    Probability,
    Record,
    SchemaVersion1,
    Sha256Hex,
    ShortText,
    UtcTimestamp,
    format_utc_ms,
)
from footfall.contract.vocab import AGE_GROUPS, AgeGroup, Direction, Gender, ModelRole, Side
from footfall.ids import SafeId

SCHEMA_VERSION: Literal[1] = 1
MAX_EVENT_BYTES = 16 * 1024
"""Largest encoded event accepted. A real event is about 1.2 KB; the margin is for long notes."""

_PROBABILITY_SUM_TOLERANCE = 1e-3


class GenderEstimate(Record):
    """Gender of the person, or ``unknown`` when no face was good enough to judge."""

    label: Gender = Field(description="female, male, or unknown")
    confidence: Probability | None = Field(
        description="Probability of `label` (0.5-1) after averaging the person's best faces; "
        "null when unknown"
    )

    @model_validator(mode="after")
    def _confidence_matches_label(self) -> Self:
        if self.label is Gender.UNKNOWN and self.confidence is not None:
            raise ValueError("confidence must be null when the label is unknown")
        if self.label is not Gender.UNKNOWN:
            if self.confidence is None:
                raise ValueError(f"confidence is required when the label is {self.label.value}")
            if self.confidence < 0.5:
                raise ValueError("confidence of the chosen label must be >= 0.5")
        return self


class AgeEstimate(Record):
    """Age of the person: a years estimate, its group and the probability of every group."""

    group: AgeGroup = Field(description="One of the 8 age groups, or unknown")
    years: float | None = Field(
        ge=0.0, le=120.0, description="Expected age in years; null when unknown"
    )
    group_probabilities: dict[AgeGroup, Probability] | None = Field(
        description="Probability of each of the 8 groups (sums to 1); null when unknown"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        known = self.group is not AgeGroup.UNKNOWN
        if not known:
            if self.years is not None or self.group_probabilities is not None:
                raise ValueError(
                    "years and group_probabilities must be null when the group is unknown"
                )
            return self
        if self.years is None or self.group_probabilities is None:
            raise ValueError(
                f"years and group_probabilities are required for group {self.group.value}"
            )
        probs = self.group_probabilities
        if set(probs) != set(AGE_GROUPS):
            missing = [g.value for g in AGE_GROUPS if g not in probs]
            extra = [g.value for g in probs if g not in AGE_GROUPS]
            raise ValueError(
                f"group_probabilities needs exactly the 8 groups (missing {missing}, extra {extra})"
            )
        total = sum(probs.values())
        if abs(total - 1.0) > _PROBABILITY_SUM_TOLERANCE:
            raise ValueError(f"group_probabilities must sum to 1, got {total:.4f}")
        return self


class FaceInfo(Record):
    """How good the faces behind the estimates were."""

    quality: Probability | None = Field(
        description="Quality score (0-1) of the best face seen; null when no face was seen"
    )
    samples: int = Field(
        ge=0, le=1000, description="Number of face observations the estimates averaged"
    )
    note: Note | None = Field(
        default=None,
        description="Why gender and age are unknown when they are (e.g. no face was seen on "
        "a person counted by their body); null otherwise",
    )


class CropRef(Record):
    """Where the person's face crop is (or will be, once uploaded) in the object store."""

    key: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$",
        description="Object key, e.g. <site>/<spot>/<yyyy-mm-dd>/<event_id>.jpg",
    )
    sha256: Sha256Hex = Field(description="SHA-256 of the JPEG bytes, lowercase hex")
    size_bytes: int = Field(gt=0, le=10_000_000, description="Size of the JPEG in bytes")
    content_type: Literal["image/jpeg"] = Field(default="image/jpeg", description="MIME type")


class ModelRef(Record):
    """A model that contributed to the event."""

    role: ModelRole = Field(description="detector, gender or age")
    name: ShortText = Field(description="Model name from the model manifest")
    version: ShortText = Field(description="Model version from the model manifest")


class PersonEvent(Record):
    """One person seen at one spot, from first to last sight."""

    schema_version: SchemaVersion1 = Field(description="Version of this contract")
    event_id: UUID = Field(description="Made on the device; unique across the fleet")
    site: SafeId = Field(description="Site id (a location with candidate spots)")
    spot: SafeId = Field(description="Spot id (one camera position within the site)")
    agent: SafeId = Field(description="Id of the edge agent that saw the person")
    track_id: int = Field(ge=0, le=INT64_MAX, description="Track id, unique per agent run")
    first_seen: UtcTimestamp = Field(description="First sight of the person")
    last_seen: UtcTimestamp = Field(description="Last sight of the person")
    dwell_seconds: float = Field(ge=0.0, description="Time in view; at most last_seen - first_seen")
    direction: Direction = Field(description="in / out across the counting line, or passed")
    entry_side: Side = Field(description="Where the person came into the picture")
    exit_side: Side = Field(description="Where the person left the picture")
    gender: GenderEstimate
    age: AgeEstimate
    face: FaceInfo
    crop: CropRef | None = Field(description="The face crop, or null when none is kept")
    crop_note: Note | None = Field(
        default=None, description="Why there is no crop when one was expected (e.g. disk full)"
    )
    models: list[ModelRef] = Field(max_length=8, description="Models behind the estimates")
    counted_by: Literal["person", "face"] | None = Field(
        default=None,
        description="The agent's mode: person (bodies tracked and counted, faces attached) or "
        "face (faces tracked); null from agents older than the modes",
    )

    @field_validator("last_seen")
    @classmethod
    def _not_before_first_seen(cls, value: datetime, info: ValidationInfo) -> datetime:
        first = info.data.get("first_seen")
        if first is not None and value < first:
            raise ValueError(f"is before first_seen ({format_utc_ms(first)})")
        return value

    @field_validator("dwell_seconds")
    @classmethod
    def _within_span(cls, value: float, info: ValidationInfo) -> float:
        first, last = info.data.get("first_seen"), info.data.get("last_seen")
        if first is not None and last is not None:
            span = (last - first).total_seconds()
            if value > span + 0.001:
                raise ValueError(f"{value:.3f} exceeds last_seen - first_seen ({span:.3f})")
        return value

"""Typed records going into and coming out of the store, and their mapping to columns."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from aggregator.store.tables import AGE_PROBABILITY_COLUMNS
from footfall.contract import (
    SCHEMA_VERSION,
    AgeEstimate,
    AgeGroup,
    AgentState,
    AgentStats,
    AgentStatus,
    Channel,
    CropRef,
    Direction,
    FaceInfo,
    Gender,
    GenderEstimate,
    ModelRef,
    PersonEvent,
    Side,
)


def model_refs(stored: list[dict[str, str]]) -> tuple[ModelRef, ...]:
    """The ModelRefs of a stored ``models`` column. A fleet runs a handful of model sets, so each
    distinct set is validated once rather than once per row."""
    return _model_refs(tuple((m["role"], m["name"], m["version"]) for m in stored))


@lru_cache(maxsize=256)
def _model_refs(key: tuple[tuple[str, str, str], ...]) -> tuple[ModelRef, ...]:
    return tuple(ModelRef(role=role, name=name, version=version) for role, name, version in key)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event: every field of the PersonEvent, flattened, plus when and how it arrived.

    Timestamps are aware UTC datetimes. ``age_probabilities`` is None exactly when the age group is
    unknown. ``to_event()`` gives the original PersonEvent back.
    """

    event_id: UUID
    schema_version: int
    site: str
    spot: str
    agent: str
    track_id: int
    first_seen: datetime
    last_seen: datetime
    dwell_seconds: float
    direction: Direction
    entry_side: Side
    exit_side: Side
    gender: Gender
    gender_confidence: float | None
    age_group: AgeGroup
    age_years: float | None
    age_probabilities: dict[AgeGroup, float] | None
    face_quality: float | None
    face_samples: int
    crop_key: str | None
    crop_sha256: str | None
    crop_size_bytes: int | None
    crop_note: str | None
    models: tuple[ModelRef, ...]
    received_at: datetime
    source: str

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> "EventRow":
        probs: dict[AgeGroup, float] | None = None
        if row["age_group"] != AgeGroup.UNKNOWN.value:
            probs = {g: float(row[col]) for g, col in AGE_PROBABILITY_COLUMNS.items()}
        return cls(
            event_id=row["event_id"],
            schema_version=row["schema_version"],
            site=row["site"],
            spot=row["spot"],
            agent=row["agent"],
            track_id=row["track_id"],
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            dwell_seconds=row["dwell_seconds"],
            direction=Direction(row["direction"]),
            entry_side=Side(row["entry_side"]),
            exit_side=Side(row["exit_side"]),
            gender=Gender(row["gender"]),
            gender_confidence=row["gender_confidence"],
            age_group=AgeGroup(row["age_group"]),
            age_years=row["age_years"],
            age_probabilities=probs,
            face_quality=row["face_quality"],
            face_samples=row["face_samples"],
            crop_key=row["crop_key"],
            crop_sha256=row["crop_sha256"],
            crop_size_bytes=row["crop_size_bytes"],
            crop_note=row["crop_note"],
            models=model_refs(row["models"]),
            received_at=row["received_at"],
            source=row["source"],
        )

    def to_event(self) -> PersonEvent:
        crop = None
        if self.crop_key is not None:
            assert self.crop_sha256 is not None and self.crop_size_bytes is not None
            crop = CropRef(
                key=self.crop_key, sha256=self.crop_sha256, size_bytes=self.crop_size_bytes
            )
        return PersonEvent(
            schema_version=SCHEMA_VERSION,
            event_id=self.event_id,
            site=self.site,
            spot=self.spot,
            agent=self.agent,
            track_id=self.track_id,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            dwell_seconds=self.dwell_seconds,
            direction=self.direction,
            entry_side=self.entry_side,
            exit_side=self.exit_side,
            gender=GenderEstimate(label=self.gender, confidence=self.gender_confidence),
            age=AgeEstimate(
                group=self.age_group,
                years=self.age_years,
                group_probabilities=self.age_probabilities,
            ),
            face=FaceInfo(quality=self.face_quality, samples=self.face_samples),
            crop=crop,
            crop_note=self.crop_note,
            models=list(self.models),
        )


def event_values(event: PersonEvent, *, received_at: datetime, source: str) -> dict[str, Any]:
    """The column values of one event."""
    probs = event.age.group_probabilities or {}
    crop = event.crop
    values: dict[str, Any] = {
        "event_id": event.event_id,
        "schema_version": event.schema_version,
        "site": event.site,
        "spot": event.spot,
        "agent": event.agent,
        "track_id": event.track_id,
        "first_seen": event.first_seen,
        "last_seen": event.last_seen,
        "dwell_seconds": event.dwell_seconds,
        "direction": event.direction.value,
        "entry_side": event.entry_side.value,
        "exit_side": event.exit_side.value,
        "gender": event.gender.label.value,
        "gender_confidence": event.gender.confidence,
        "age_group": event.age.group.value,
        "age_years": event.age.years,
        "face_quality": event.face.quality,
        "face_samples": event.face.samples,
        "crop_key": crop.key if crop else None,
        "crop_sha256": crop.sha256 if crop else None,
        "crop_size_bytes": crop.size_bytes if crop else None,
        "crop_note": event.crop_note,
        "models": [m.model_dump(mode="json") for m in event.models],
        "received_at": received_at,
        "source": source,
    }
    for group, column in AGE_PROBABILITY_COLUMNS.items():
        values[column] = probs.get(group)
    return values


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An accepted event on its way into the store.

    ``payload`` is the event as it was received (its SHA-256 is stored, and it becomes the
    dead letter's payload should the event conflict with a stored one); without it the event's
    own JSON stands in. ``topic`` and ``where`` (see :class:`aggregator.intake.Inbound`) only
    serve such a dead letter.
    """

    event: PersonEvent
    received_at: datetime
    source: str
    payload: bytes | None = None
    topic: str | None = None
    where: str | None = None

    def wire(self) -> bytes:
        return self.payload if self.payload is not None else self.event.to_json()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message on its way into the dead-letter table.

    ``payload`` may already be truncated; ``payload_size`` is the size it had on arrival.
    """

    received_at: datetime
    source: str
    topic: str | None
    site: str | None
    spot: str | None
    agent: str | None
    reason: str
    field: str | None
    detail: str
    payload: bytes
    payload_size: int


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A stored dead letter."""

    id: int
    received_at: datetime
    source: str
    topic: str | None
    site: str | None
    spot: str | None
    agent: str | None
    reason: str
    field: str | None
    detail: str
    payload: bytes
    payload_size: int

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> "DeadLetterRow":
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """An accepted status or heartbeat on its way into the store."""

    channel: Channel
    status: AgentStatus
    received_at: datetime


def status_values(status: AgentStatus) -> dict[str, Any]:
    """The AgentStatus fields shared by the history and the agents table."""
    stats = status.stats
    values: dict[str, Any] = {
        "state": status.state.value,
        "software_version": status.software_version,
        "config_version": status.config_version,
        "models": [m.model_dump(mode="json") for m in status.models],
        "last_error": status.last_error,
    }
    for name in STATS_FIELDS:
        values[name] = getattr(stats, name) if stats is not None else None
    return values


STATS_FIELDS: tuple[str, ...] = tuple(AgentStats.model_fields)
"""The counters of a heartbeat (``AgentStats``), each a column of the status tables."""


@dataclass(frozen=True, slots=True)
class AgentRow:
    """The latest known state of one agent.

    ``state`` is what the agent (or the broker, through its will) last said; ``last_seen_at`` is
    when the aggregator last heard anything from it. The counters come from the last message that
    carried them and are None if none did.
    """

    site: str
    spot: str
    agent: str
    state: AgentState
    state_since: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    last_sent_at: datetime
    last_channel: Channel
    software_version: str
    config_version: str | None
    models: tuple[ModelRef, ...]
    started_at: datetime | None
    uptime_seconds: float | None
    fps: float | None
    frames_in: int | None
    frames_processed: int | None
    frames_dropped: int | None
    events_emitted: int | None
    events_sent: int | None
    outbox_depth: int | None
    crops_pending: int | None
    crops_dropped: int | None
    source_reconnects: int | None
    last_error: str | None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> "AgentRow":
        values = {f.name: row[f.name] for f in fields(cls)}
        values["state"] = AgentState(values["state"])
        values["last_channel"] = Channel(values["last_channel"])
        values["models"] = model_refs(values["models"])
        return cls(**values)

"""Typed records going into and coming out of the store."""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any
from uuid import UUID

from aggregator.event_columns import event_of
from footfall.contract import (
    AgeGroup,
    AgentState,
    AgentStats,
    AgentStatus,
    Channel,
    Gender,
    ModelRef,
    PersonEvent,
    SourceState,
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
    """One stored event as read back: the PersonEvent and how it arrived.

    The event is rebuilt from its columns (:func:`aggregator.event_columns.event_of`); times are
    aware UTC datetimes. The properties name the event's fields as the columns do.
    """

    event: PersonEvent
    received_at: datetime
    source: str

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> "EventRow":
        return cls(event_of(row), row["received_at"], row["source"])

    def to_event(self) -> PersonEvent:
        return self.event

    @property
    def event_id(self) -> UUID:
        return self.event.event_id

    @property
    def first_seen(self) -> datetime:
        return self.event.first_seen

    @property
    def gender(self) -> Gender:
        return self.event.gender.label

    @property
    def age_probabilities(self) -> dict[AgeGroup, float] | None:
        return self.event.age.group_probabilities

    @property
    def models(self) -> list[ModelRef]:
        return self.event.models


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

    @property
    def content_sha256(self) -> bytes:
        """The stored content hash: SHA-256 of the event as received. Hashing the received
        bytes costs about 2 us an event; re-serialising it to hash a canonical form
        (``to_json``) cost about 40, as much as decoding it. Agents send that canonical form
        anyway, and a copy that differs in bytes only is told apart by comparing content
        (:meth:`aggregator.store.EventStore.write`)."""
        return hashlib.sha256(self.wire()).digest()


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
        value = getattr(stats, name) if stats is not None else None
        values[name] = value.value if isinstance(value, Enum) else value
    return values


STATS_FIELDS: tuple[str, ...] = tuple(AgentStats.model_fields)
"""The counters of a heartbeat (``AgentStats``), each a column of the status tables."""

PENDING_FIELDS: tuple[str, ...] = ("outbox_depth", "crops_pending")
"""The counters of the agents table taken from heartbeats only (see :class:`AgentRow`)."""


@dataclass(frozen=True, slots=True)
class AgentRow:
    """The latest known state of one agent.

    ``state`` is what the agent (or the broker, through its will) last said; ``last_seen_at`` is
    when the aggregator last heard anything from it. The counters come from the last message that
    carried them and are None if none did, except the pending counts (``outbox_depth``,
    ``crops_pending``): those come from the latest heartbeat, sent at ``pending_at``, since the
    offline status at shutdown is built before the outbox's last crops are uploaded.
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
    source_state: SourceState | None = None
    source_error: str | None = None
    pending_at: datetime | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> "AgentRow":
        values = {f.name: row[f.name] for f in fields(cls)}
        values["state"] = AgentState(values["state"])
        if values["source_state"] is not None:
            values["source_state"] = SourceState(values["source_state"])
        values["last_channel"] = Channel(values["last_channel"])
        values["models"] = model_refs(values["models"])
        return cls(**values)

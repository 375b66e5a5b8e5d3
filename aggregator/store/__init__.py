"""The aggregator's store: events, dead letters, agent status; SQLite or PostgreSQL."""

from aggregator.store.conflicts import CONFLICT
from aggregator.store.coverage import Interval
from aggregator.store.rows import (
    AgentRow,
    DeadLetter,
    DeadLetterRow,
    EventRow,
    StatusRecord,
    StoredEvent,
)
from aggregator.store.store import EventStore, WriteBatch, WriteResult

__all__ = [
    "CONFLICT",
    "AgentRow",
    "DeadLetter",
    "DeadLetterRow",
    "EventRow",
    "EventStore",
    "Interval",
    "StatusRecord",
    "StoredEvent",
    "WriteBatch",
    "WriteResult",
]

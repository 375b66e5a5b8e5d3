"""The event INSERT as driver-level SQL plus a function making its parameter tuples.

Values are what SQLAlchemy's column types would have bound (see :mod:`aggregator.store.types`):
on SQLite a UUID is 32 hex digits and a timestamp naive UTC text with microseconds; on PostgreSQL
they are native ``uuid`` and ``timestamptz``. A round-trip test on both backends holds this to
what the Core types read back.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.dialects import postgresql

from aggregator.store import tables
from aggregator.store.rows import StoredEvent
from footfall.contract import AGE_GROUPS, ModelRef

EventRowMaker = Callable[[StoredEvent], tuple[Any, ...]]
_COLUMNS = tuple(c.name for c in tables.events.columns)
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
_NO_PROBABILITIES: tuple[None, ...] = (None,) * len(AGE_GROUPS)


def content_sha256(item: StoredEvent) -> bytes:
    """The stored content hash: SHA-256 of the event as received. Hashing the received bytes
    costs about 2 us an event; re-serialising it to hash a canonical form (``to_json``) cost
    about 40, as much as decoding it. Agents send that canonical form anyway, and a copy that
    differs in bytes only is told apart by comparing content (:meth:`EventStore.write`)."""
    return hashlib.sha256(item.wire()).digest()


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_SQLITE_DATETIME)


def _same(value: Any) -> Any:
    return value


def _models_json(models: list[ModelRef]) -> str:
    # A fleet runs a handful of model sets; serializing each set once saves a model_dump and a
    # json.dumps per event. The key is plain strings: hashing and comparing pydantic models
    # costs more than the serialization it saves.
    return _models_json_of(tuple((m.role.value, m.name, m.version) for m in models))


@lru_cache(maxsize=256)
def _models_json_of(key: tuple[tuple[str, str, str], ...]) -> str:
    return json.dumps(
        [{"role": role, "name": name, "version": version} for role, name, version in key]
    )


@dataclass(frozen=True)
class EventInsert:
    """``conn.exec_driver_sql(sql, params([row(e) for e in events]))`` inserts the events,
    skipping known ids; its rowcount is the number of new events."""

    sql: str
    row: EventRowMaker
    params: Callable[[list[tuple[Any, ...]]], Any]


def _columns_of(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True)) or tuple([] for _ in _COLUMNS)


def _postgres_sql() -> str:
    # One statement per batch: each column travels as one array and unnest() turns them back
    # into rows. Against executemany (one INSERT per row, pipelined) this saves the per-row
    # statement overhead on both the client and the server. The arrays go in binary (%b):
    # psycopg's text format escapes every element in Python, its binary dumpers are C.
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays, picks = [], []
    for i, column in enumerate(tables.events.columns):
        sql_type = re.sub(r"\(\d+\)", "", column.type.compile(dialect=dialect))
        if sql_type == "JSON":  # sent as text, parsed by the server
            arrays.append("%b::text[]")
            picks.append(f"c{i}::json")
        else:
            arrays.append(f"%b::{sql_type}[]")
            picks.append(f"c{i}")
    names = ", ".join(f"c{i}" for i in range(len(_COLUMNS)))
    return (
        f"INSERT INTO {tables.events.name} ({', '.join(_COLUMNS)}) "
        f"SELECT {', '.join(picks)} FROM unnest({', '.join(arrays)}) AS u({names}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


def fast_event_insert(dialect: str) -> EventInsert:
    """How to insert a batch of events on ``dialect``, ignoring known ids: ``executemany`` of
    one parameter tuple per event on SQLite (sqlite3 loops in C), one statement over column
    arrays on PostgreSQL."""
    params: Callable[[list[tuple[Any, ...]]], Any]
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in _COLUMNS)
        time: Callable[[datetime], Any] = _sqlite_time
        uid: Callable[[Any], Any] = lambda v: v.hex  # noqa: E731
        sql = (
            f"INSERT INTO {tables.events.name} ({', '.join(_COLUMNS)}) VALUES ({marks}) "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        params = _same
    elif dialect == "postgresql":
        time = uid = _same
        sql = _postgres_sql()
        params = _columns_of
    else:
        raise ValueError(f"no event insert for dialect {dialect!r}")

    def make_row(item: StoredEvent) -> tuple[Any, ...]:
        e = item.event
        probs = e.age.group_probabilities
        crop = e.crop
        return (
            uid(e.event_id),
            e.schema_version,
            e.site,
            e.spot,
            e.agent,
            e.track_id,
            time(e.first_seen),
            time(e.last_seen),
            e.dwell_seconds,
            e.direction.value,
            e.entry_side.value,
            e.exit_side.value,
            e.gender.label.value,
            e.gender.confidence,
            e.age.group.value,
            e.age.years,
            *(_NO_PROBABILITIES if probs is None else (probs[g] for g in AGE_GROUPS)),
            e.face.quality,
            e.face.samples,
            crop.key if crop else None,
            crop.sha256 if crop else None,
            crop.size_bytes if crop else None,
            e.crop_note,
            _models_json(e.models),
            time(item.received_at),
            item.source,
            content_sha256(item),
        )

    expected = (
        "event_id",
        "schema_version",
        "site",
        "spot",
        "agent",
        "track_id",
        "first_seen",
        "last_seen",
        "dwell_seconds",
        "direction",
        "entry_side",
        "exit_side",
        "gender",
        "gender_confidence",
        "age_group",
        "age_years",
        *tables.AGE_PROBABILITY_COLUMNS.values(),
        "face_quality",
        "face_samples",
        "crop_key",
        "crop_sha256",
        "crop_size_bytes",
        "crop_note",
        "models",
        "received_at",
        "source",
        "content_sha256",
    )
    if expected != _COLUMNS:  # the tuple above must follow the table's column order
        raise RuntimeError(f"fast_insert is out of date with the events table: {_COLUMNS}")
    return EventInsert(sql, make_row, params)

"""The event INSERT as driver-level SQL plus a function making its parameter tuples.

Both are built from the columns' declaration (:mod:`aggregator.event_columns`). Values are what
SQLAlchemy's column types would have bound (see :mod:`aggregator.store.types`): on SQLite a UUID
is 32 hex digits and a timestamp naive UTC text with microseconds; on PostgreSQL they are native
``uuid`` and ``timestamptz``. A round-trip test on both backends holds this to what the Core
types read back.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.dialects import postgresql

from aggregator.event_columns import EVENT_COLUMNS, Conversions, row_function
from aggregator.store import tables
from aggregator.store.rows import StoredEvent

EventRowMaker = Callable[[StoredEvent], tuple[Any, ...]]
_COLUMNS = tuple(c.name for c in EVENT_COLUMNS)
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_SQLITE_DATETIME)


def _sqlite_uuid(value: UUID) -> str:
    return value.hex


def _same(value: Any) -> Any:
    return value


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
    convert: Conversions
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in _COLUMNS)
        sql = (
            f"INSERT INTO {tables.events.name} ({', '.join(_COLUMNS)}) VALUES ({marks}) "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        convert = {"uuid": _sqlite_uuid, "timestamp": _sqlite_time}
        params = _same
    elif dialect == "postgresql":
        sql = _postgres_sql()
        convert = {}  # psycopg takes UUIDs and aware datetimes as they are
        params = _columns_of
    else:
        raise ValueError(f"no event insert for dialect {dialect!r}")
    row = row_function(EVENT_COLUMNS, stored=True, convert=convert)
    return EventInsert(sql, row, params)

"""The event INSERT as driver-level SQL plus a function making its parameter tuples.

Values are what SQLAlchemy's column types would have bound (see :mod:`aggregator.store.types`):
on SQLite a UUID is 32 hex digits and a timestamp naive UTC text with microseconds; on PostgreSQL
they are native ``uuid`` and ``timestamptz``.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aggregator.store import tables
from aggregator.store.rows import StoredEvent, event_values

EventRowMaker = Callable[[StoredEvent], tuple[Any, ...]]
_COLUMNS = tuple(c.name for c in tables.events.columns)
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_SQLITE_DATETIME)


def fast_event_insert(dialect: str) -> tuple[str, EventRowMaker]:
    """``(sql, make_row)`` for inserting events with ``executemany``, ignoring known ids."""
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in _COLUMNS)
        convert: dict[str, Callable[[Any], Any]] = {
            "event_id": lambda v: v.hex,
            "first_seen": _sqlite_time,
            "last_seen": _sqlite_time,
            "received_at": _sqlite_time,
            "models": json.dumps,
        }
    elif dialect == "postgresql":
        marks = ", ".join("%s::json" if c == "models" else "%s" for c in _COLUMNS)
        convert = {"models": json.dumps}
    else:
        raise ValueError(f"no event insert for dialect {dialect!r}")
    sql = (
        f"INSERT INTO {tables.events.name} ({', '.join(_COLUMNS)}) VALUES ({marks}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )
    plan = tuple((name, convert.get(name)) for name in _COLUMNS)

    def make_row(item: StoredEvent) -> tuple[Any, ...]:
        values = event_values(item.event, received_at=item.received_at, source=item.source)
        return tuple(
            values[name] if fn is None or values[name] is None else fn(values[name])
            for name, fn in plan
        )

    return sql, make_row

"""Writing dead letters: what was refused, with its text made safe for any backend."""

from collections.abc import Sequence

import sqlalchemy as sa

from aggregator.store import tables
from aggregator.store.rows import DeadLetter

_TEXT_LIMITS = {"source": 200, "topic": 1024, "reason": 32, "field": 200, "detail": 2000}


def clean_text(value: str, limit: int) -> str:
    """Text that any backend accepts: no NUL (PostgreSQL refuses it), no lone surrogates, and at
    most ``limit`` characters."""
    value = value.replace("\x00", "\\x00")
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


def insert_dead_letters(conn: sa.Connection, items: Sequence[DeadLetter]) -> None:
    rows = []
    for item in items:
        row = {
            "received_at": item.received_at,
            "site": item.site,
            "spot": item.spot,
            "agent": item.agent,
            "payload": item.payload,
            "payload_size": item.payload_size,
        }
        for name, limit in _TEXT_LIMITS.items():
            value = getattr(item, name)
            row[name] = None if value is None else clean_text(value, limit)
        rows.append(row)
    conn.execute(sa.insert(tables.dead_letters), rows)

"""Reading event columns in bulk, with as little work per value as the backend allows.

What each column needs follows from its SQL type in the declaration
(:mod:`aggregator.event_columns`): JSON comes as its text, a UUID as its canonical text, a
timestamp as an aware UTC datetime; everything else as the driver reads it.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from aggregator.event_columns import EventColumn


class ColumnReader:
    """Selects the values of ``columns`` and turns the raw rows into the documented types."""

    def __init__(self, dialect: str, columns: Sequence[EventColumn]) -> None:
        self.dialect = dialect
        self.columns = tuple(columns)

    def select(self, t: sa.Table) -> list[Any]:
        # type_coerce to a plain type skips the per-value result processing of UtcDateTime, Uuid
        # and JSON; the conversion below is done column-wise instead. The key columns come last
        # in their stored form, for the keyset pagination.
        out: list[Any] = []
        for column in self.columns:
            col, kind = t.c[column.name], column.type.kind
            if kind == "json" or (kind == "uuid" and self.dialect == "postgresql"):
                out.append(sa.cast(col, sa.Text()))
            elif kind == "timestamp" and self.dialect == "sqlite":
                out.append(sa.type_coerce(col, sa.Text()))
            else:
                out.append(sa.type_coerce(col, sa.types.NullType()))
        out += [t.c.first_seen, t.c.event_id]
        return out

    def values(self, rows: Sequence[Any]) -> dict[str, list[Any]]:
        """Column name -> the column's values, from rows selected with :meth:`select`."""
        out: dict[str, list[Any]] = {}
        for i, column in enumerate(self.columns):
            values = [r[i] for r in rows]
            kind = column.type.kind
            if kind == "timestamp":
                if self.dialect == "sqlite":
                    values = [
                        None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC)
                        for v in values
                    ]
                else:
                    values = [None if v is None else v.astimezone(UTC) for v in values]
            elif kind == "uuid" and self.dialect == "sqlite":
                values = [str(uuid.UUID(hex=v)) for v in values]
            out[column.name] = values
        return out

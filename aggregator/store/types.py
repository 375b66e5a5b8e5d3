"""Column types that behave the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from aggregator.event_columns import SqlType


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that goes in and comes out as an aware UTC ``datetime``.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so the value is stored as naive
    UTC text: every row then uses the same offset and text order is time order, which is what the
    range queries rely on.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_PLAIN: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "uuid": sa.Uuid,
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "float": sa.Float,
    "timestamp": UtcDateTime,
    "json": sa.JSON,
}


def sa_type(declared: SqlType) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type of a column type declared in :mod:`aggregator.event_columns`."""
    if declared.kind == "text":
        return sa.String(declared.length)
    if declared.kind == "bytes":
        return sa.LargeBinary(declared.length)
    return _PLAIN[declared.kind]()

"""A small versioned migration runner.

Why not alembic: the schema is a handful of tables owned by this package, migrations must run the
same on an embedded SQLite file and on PostgreSQL, and the aggregator applies them itself at
startup. A list of numbered Python functions, a ``schema_version`` table and a lock cover that
without alembic's ini file, env.py and script directory, and a test checks that a migrated
database matches :mod:`aggregator.store.tables`.

Each migration runs in its own transaction together with the row that records it, so a failed
migration leaves the previous version in place. Two processes upgrading at once serialize on a
lock (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from aggregator.errors import SchemaError
from aggregator.store import tables

log = logging.getLogger(__name__)

# Arbitrary constant that names "footfall schema migration" among advisory locks.
_PG_LOCK_KEY = 0x466F6F7466616C6C


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def _v1_initial(conn: sa.Connection) -> None:
    tables.metadata.create_all(
        conn,
        tables=[
            tables.events,
            tables.dead_letters,
            tables.agent_status_history,
            tables.agents,
        ],
    )


def _v2_deliveries(conn: sa.Connection) -> None:
    tables.metadata.create_all(conn, tables=[tables.deliveries])


def _add_columns(conn: sa.Connection, table: sa.Table, *names: str) -> None:
    # A store created by this version already has the columns (version 1 creates the tables as
    # they are defined now); one created before gets them, null for the rows it holds. Adding
    # a nullable column without a default rewrites no rows on either backend.
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name in have:
            continue
        column = table.c[name]
        sql_type = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {sql_type}")


def _add_event_columns(conn: sa.Connection, *names: str) -> None:
    _add_columns(conn, tables.events, *names)


def _v3_content_hash(conn: sa.Connection) -> None:
    _add_event_columns(conn, "content_sha256")


def _v4_modes(conn: sa.Connection) -> None:
    _add_event_columns(conn, "counted_by", "face_note")


def _v5_source_state(conn: sa.Connection) -> None:
    for table in (tables.agent_status_history, tables.agents):
        _add_columns(conn, table, "source_state", "source_error")
    _add_columns(conn, tables.agents, "pending_at")


def _v6_sites(conn: sa.Connection) -> None:
    tables.metadata.create_all(conn, tables=[tables.sites])


def _v7_spot_calibrations(conn: sa.Connection) -> None:
    tables.metadata.create_all(conn, tables=[tables.spot_calibrations])


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, dead letters, agents and their status history", _v1_initial),
    Migration(2, "log of nightly workbook deliveries", _v2_deliveries),
    Migration(3, "content hash of each event, to report conflicting duplicates", _v3_content_hash),
    Migration(4, "the agent mode that counted each event, and why its face is unknown", _v4_modes),
    Migration(
        5,
        "agents' video source state and error; the time of the heartbeat their pending counts "
        "come from",
        _v5_source_state,
    ),
    Migration(6, "sites and their time zones, as the configuration declares them", _v6_sites),
    Migration(7, "site calibrations of the classifier, per spot", _v7_spot_calibrations),
)
LATEST_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class SchemaStatus:
    current: int  # 0 = empty database
    latest: int
    pending: tuple[Migration, ...]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.latest


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(tables.schema_version.name):
        return 0
    value = conn.execute(sa.select(sa.func.max(tables.schema_version.c.version))).scalar()
    return int(value or 0)


def status(engine: sa.Engine) -> SchemaStatus:
    with engine.connect() as conn:
        current = current_version(conn)
    return SchemaStatus(
        current=current,
        latest=LATEST_VERSION,
        pending=tuple(m for m in MIGRATIONS if m.version > current),
    )


def _lock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def upgrade(engine: sa.Engine, *, announce: int = logging.INFO) -> list[Migration]:
    """Apply every pending migration, in order; return those applied by this call.

    Each migration applied to a store that had a schema is logged at ``announce`` (a command
    that prints what it applied passes DEBUG); laying out a new store is logged at DEBUG, since
    a fresh store (every survey makes one) is not news."""
    applied: list[Migration] = []
    level = announce
    for migration in MIGRATIONS:
        with engine.connect() as conn, conn.execution_options(sqlite_immediate=True).begin():
            _lock(conn)
            if migration.version == 1:
                tables.metadata.create_all(conn, tables=[tables.schema_version])
            current = current_version(conn)
            if current > LATEST_VERSION:
                raise SchemaError(newer_message(current))
            if migration.version <= current:
                continue
            if current == 0:
                level = logging.DEBUG
            log.log(
                level, "applying schema migration %d: %s", migration.version, migration.description
            )
            migration.apply(conn)
            conn.execute(
                sa.insert(tables.schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            applied.append(migration)
    return applied


def newer_message(current: int) -> str:
    return (
        f"the store's schema is at version {current}, newer than this software knows "
        f"({LATEST_VERSION}); upgrade the aggregator"
    )


def require_latest(engine: sa.Engine) -> None:
    """Raise :class:`SchemaError` unless the schema is exactly the version this code needs."""
    found = status(engine)
    if found.current > found.latest:
        raise SchemaError(newer_message(found.current))
    if found.current < found.latest:
        raise SchemaError(
            f"the store's schema is at version {found.current}, this software needs "
            f"{found.latest}: run `footfall-aggregator db upgrade`"
        )

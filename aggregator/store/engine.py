"""Opening a database: one place that knows the differences between SQLite and PostgreSQL."""

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from aggregator.errors import StoreError
from footfall.redact import redact

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def redacted(url: str | URL) -> str:
    """The URL as it may be printed: never with a password (in its user part or, as libpq
    also takes it, in its query)."""
    try:
        return redact(make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_engine(url: str, *, password: str | None = None, must_exist: bool = False) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///file.db`` or ``postgresql+psycopg://user@host/db``).
    With ``must_exist``, a SQLite file that does not exist is an error instead of being created.

    SQLite is set up for one writer and many readers across processes: WAL journal, a busy
    timeout instead of immediate "database is locked" errors, and ``synchronous=FULL`` because an
    event is acknowledged to the broker as soon as its transaction commits, so a commit must
    survive a power cut, not only a crash.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsed lazily; a port that is not a number raises here
    except (ArgumentError, ValueError) as exc:
        # Neither message is allowed to echo the URL, which may hold a password.
        raise StoreError(f"not a database URL: {redact(str(exc))}") from None
    if password is not None:
        parsed = parsed.set(password=password)
    # SQLite creates a missing file on connect; a command that only reads must not leave an empty
    # database behind because of a typo.
    path = sqlite_file(parsed)
    if must_exist and path is not None and not path.exists():
        raise StoreError(
            f"{path}: no such database file; check store.url (or --store), or create the store "
            "with `footfall-aggregator db upgrade`"
        )
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            _configure_sqlite(engine)
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)
        else:
            raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use {redacted(parsed)}: {redact(str(exc))}") from None
    return engine


def _configure_sqlite(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling does not put DDL inside transactions and starts them
    # lazily; SQLAlchemy's documented recipe is to switch it off and emit BEGIN ourselves, which
    # makes migrations atomic too.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writer that starts with a read (the migration runner) must take the write lock up
        # front, or two processes can both read and then deadlock on upgrading their locks.
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_immediate") else ""
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

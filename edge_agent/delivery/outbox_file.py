"""The outbox's SQLite file: its schema and the migration from older versions, one connection
per thread, and transactions at the durability each kind of write needs. What goes in and out,
and when, is :mod:`edge_agent.delivery.outbox`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.config import Synchronous
from edge_agent.delivery.outbox_records import COUNTER_NAMES, OutboxError

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.db"
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    payload      BLOB    NOT NULL,
    created_at   REAL    NOT NULL,
    published_at REAL,
    ever_published INTEGER NOT NULL DEFAULT 0,
    confirmed_at REAL,
    crop_state   INTEGER NOT NULL,
    crop_key     TEXT,
    crop_sha256  TEXT,
    crop_bytes   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unsent ON events(seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS events_unconfirmed ON events(seq) WHERE confirmed_at IS NULL;
CREATE INDEX IF NOT EXISTS events_crop_pending ON events(seq) WHERE crop_state = 1;
CREATE TABLE IF NOT EXISTS crops (
    seq  INTEGER PRIMARY KEY,
    data BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS crop_claims (
    seq INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def outbox_path(data_dir: Path) -> Path:
    return data_dir / OUTBOX_FILE


class OutboxFile:
    """One outbox file and its connections: each thread gets its own (the pipeline's puts, the
    publisher and the crop uploader never share one); :meth:`close` closes them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._closed = False

    def create(self) -> None:
        """Create or migrate the schema; the counters start at zero."""
        conn = self.conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} was written by a newer agent (outbox schema {version}, this agent "
                f"knows {SCHEMA_VERSION})"
            )
        if version == 0:
            # Must precede the first table: lets incremental_vacuum hand space back to the
            # disk after crops are dropped under disk pressure.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        if version == 1:
            # Version 1 deleted an event at its PUBACK; what it still holds was published with
            # that meaning, so it counts as confirmed.
            with self.tx(Synchronous.FULL) as tx:
                tx.execute("ALTER TABLE events ADD COLUMN confirmed_at REAL")
                tx.execute(
                    "ALTER TABLE events ADD COLUMN ever_published INTEGER NOT NULL DEFAULT 0"
                )
                tx.execute(
                    "UPDATE events SET confirmed_at = published_at,"
                    " ever_published = published_at IS NOT NULL"
                )
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")
        with self.tx(Synchronous.FULL) as tx:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)
            tx.executemany(
                "INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)",
                [(name,) for name in (*COUNTER_NAMES, "bytes")],
            )
            tx.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise OutboxError(f"{self.path}: outbox is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() may close every thread's connection;
            # each connection is otherwise used by the thread that opened it.
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self._local.conn = conn
            self._local.sync = None
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def tx(self, sync: Synchronous) -> Iterator[sqlite3.Connection]:
        conn = self.conn()
        if self._local.sync is not sync:
            conn.execute(f"PRAGMA synchronous={sync.value.upper()}")
            self._local.sync = sync
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY instead of waiting.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close every connection; the file stays as it is."""
        with self._lock:
            conns, self._conns = self._conns, []
            self._closed = True
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error as exc:  # closing must not hide the caller's own error
                log.warning("closing an outbox connection failed: %s", exc)

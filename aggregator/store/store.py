"""``EventStore``: events, dead letters and agent status in SQLite or PostgreSQL, same code.

Writes are idempotent where the input can repeat: an event is keyed by its device-made id and a
status message by (agent, channel, sent_at, state), and both are inserted with
``INSERT ... ON CONFLICT DO NOTHING``, so redelivery, a second aggregator or a replay of the same
file are no-ops. :meth:`EventStore.write` puts a whole ingest batch in one transaction, which is
what lets the ingest loop acknowledge exactly the messages that are committed. A known event id
with other content is not a copy: it becomes a ``conflict`` dead letter in the same transaction
and the stored event stays.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError

from aggregator.errors import StoreError
from aggregator.event_columns import event_columns
from aggregator.store import migrations, tables
from aggregator.store.column_reader import ColumnReader
from aggregator.store.conflicts import conflicts
from aggregator.store.coverage import Interval, StatusPoint, spot_intervals
from aggregator.store.dead_letters import insert_dead_letters
from aggregator.store.engine import create_engine, redacted
from aggregator.store.fast_insert import fast_event_insert
from aggregator.store.rows import (
    AgentRow,
    DeadLetter,
    DeadLetterRow,
    EventRow,
    StatusRecord,
    StoredEvent,
)
from aggregator.store.status import record_status
from footfall.contract import AgentState
from footfall.redact import redact

DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
DEFAULT_GAP_MULTIPLE = 3.0


@dataclass(frozen=True)
class WriteBatch:
    """Everything one ingest batch stores, committed together."""

    events: Sequence[StoredEvent] = ()
    dead_letters: Sequence[DeadLetter] = ()
    statuses: Sequence[StatusRecord] = ()

    def __len__(self) -> int:
        return len(self.events) + len(self.dead_letters) + len(self.statuses)


@dataclass
class WriteResult:
    events_inserted: int = 0
    events_duplicate: int = 0  # copies of a stored event: same id, same content
    events_conflict: int = 0  # same id as a stored event, other content: now dead letters
    dead_letters: int = 0  # the batch's dead letters plus the conflicts
    statuses_inserted: int = 0
    statuses_duplicate: int = 0


class EventStore:
    """The aggregator's store. Thread-safe for one writer thread plus readers."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL,
        gap_multiple: float = DEFAULT_GAP_MULTIPLE,
    ) -> None:
        if heartbeat_interval <= timedelta(0):
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        if gap_multiple < 1.0:
            raise ValueError(f"gap_multiple must be >= 1, got {gap_multiple}")
        self.engine = engine
        self.heartbeat_interval = heartbeat_interval
        self.gap_multiple = gap_multiple
        self._event_insert = fast_event_insert(engine.dialect.name)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        password: str | None = None,
        upgrade: bool = True,
        heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL,
        gap_multiple: float = DEFAULT_GAP_MULTIPLE,
    ) -> "EventStore":
        """Connect, then apply pending migrations (``upgrade``, which also creates a missing
        SQLite file) or insist the schema is current.

        Raises :class:`StoreError` (or its :class:`SchemaError`) with a one-line reason.
        """
        engine = create_engine(url, password=password, must_exist=not upgrade)
        try:
            if upgrade:
                migrations.upgrade(engine)
            else:
                migrations.require_latest(engine)
        except OperationalError as exc:
            engine.dispose()
            raise _cannot_open(url, exc) from None
        except StoreError:
            engine.dispose()
            raise
        return cls(engine, heartbeat_interval=heartbeat_interval, gap_multiple=gap_multiple)

    @property
    def url(self) -> str:
        return redacted(self.engine.url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> WriteResult:
        """Store a batch in one transaction. Either all of it is committed or none of it."""
        result = WriteResult()
        with self.engine.begin() as conn:
            letters = list(batch.dead_letters)
            if batch.events:
                inserted = self._insert_events(conn, batch.events)
                result.events_inserted = inserted
                if inserted < len(batch.events):
                    # Some ids were known. Only such a batch pays for looking at what is stored:
                    # a plain copy (a redelivery, a replayed file) is ignored as before, another
                    # event under a known id becomes a dead letter, in this transaction.
                    found = conflicts(conn, batch.events)
                    result.events_conflict = len(found)
                    letters += found
                result.events_duplicate = len(batch.events) - inserted - result.events_conflict
            if letters:
                insert_dead_letters(conn, letters)
                result.dead_letters = len(letters)
            for record in batch.statuses:
                if record_status(conn, record):
                    result.statuses_inserted += 1
                else:
                    result.statuses_duplicate += 1
        return result

    def add_events(self, events: Sequence[StoredEvent]) -> int:
        """Insert events, skipping ids already stored; return how many were new."""
        return self.write(WriteBatch(events=events)).events_inserted

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        return self.write(WriteBatch(dead_letters=letters)).dead_letters

    def record_statuses(self, records: Sequence[StatusRecord]) -> int:
        """Add status/heartbeat messages to the history and update the agents table; return how
        many were new (copies of a message already stored change nothing)."""
        return self.write(WriteBatch(statuses=records)).statuses_inserted

    def _insert_events(self, conn: sa.Connection, items: Sequence[StoredEvent]) -> int:
        # The hot path of ingest. SQLAlchemy's per-value type processing costs more than the
        # database itself here, so rows go to the driver as ready-made values (see
        # fast_insert); the row count is, with ON CONFLICT DO NOTHING, the number of new
        # events. A round-trip test keeps these values identical to what the Core column types
        # read back.
        insert = self._event_insert
        rows = [insert.row(i) for i in items]
        return int(conn.exec_driver_sql(insert.sql, insert.params(rows)).rowcount)

    # -- reading -----------------------------------------------------------------------------

    def iter_events(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int = 5000
    ) -> Iterator[list[EventRow]]:
        """Events of ``site`` with ``start_utc <= first_seen < end_utc``, in (first_seen,
        event_id) order, ``batch_size`` rows at a time.

        Memory is bounded by one batch whatever the range holds: each batch is its own short query
        that continues after the last row of the previous one (keyset pagination), so no
        transaction or server cursor stays open while the caller works.
        """
        select = sa.select(tables.events)
        key = lambda row: (row.first_seen, row.event_id)  # noqa: E731
        for page in self._pages(select, key, site, start_utc, end_utc, batch_size):
            yield [EventRow.from_mapping(row._mapping) for row in page]

    def iter_event_columns(
        self,
        site: str,
        start_utc: datetime,
        end_utc: datetime,
        batch_size: int = 50_000,
        columns: Sequence[str] | None = None,
    ) -> Iterator[dict[str, list[Any]]]:
        """The same events as :meth:`iter_events`, column by column and without a Python object
        per row: for bulk readers such as the workbook, which turn each batch into a DataFrame.

        Values are the same on both backends: ``event_id`` canonical UUID text, timestamps aware
        UTC datetimes, ``models`` JSON text, enums their string values, missing values None.
        ``columns`` picks a subset (default: every column of the events table).
        """
        reader = ColumnReader(self.engine.dialect.name, event_columns(columns))
        select = sa.select(*reader.select(tables.events))
        key = lambda row: (row[-2], row[-1])  # noqa: E731  (the key columns come last)
        for page in self._pages(select, key, site, start_utc, end_utc, batch_size):
            yield reader.values(page)

    def event_columns_for_crops(
        self, site: str, spot: str, crop_keys: Sequence[str], columns: Sequence[str]
    ) -> dict[str, list[Any]]:
        """``columns`` (plus ``crop_key``) of the events of ``site``/``spot`` whose crop is one
        of ``crop_keys``: the people an operator labelled for a site calibration."""
        names = list(dict.fromkeys([*columns, "crop_key"]))
        reader = ColumnReader(self.engine.dialect.name, event_columns(names))
        t = tables.events
        rows: list[Any] = []
        keys = list(dict.fromkeys(crop_keys))
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):  # bounded IN lists
                stmt = sa.select(*reader.select(t)).where(
                    t.c.site == site, t.c.spot == spot, t.c.crop_key.in_(keys[i : i + 500])
                )
                rows.extend(conn.execute(stmt).all())
        return reader.values(rows)

    def _pages(
        self,
        select: "sa.Select[Any]",
        key: Callable[["sa.Row[Any]"], tuple[Any, Any]],
        site: str,
        start_utc: datetime,
        end_utc: datetime,
        batch_size: int,
    ) -> Iterator[Sequence["sa.Row[Any]"]]:
        """The rows of ``select`` for ``site`` and ``start_utc <= first_seen < end_utc``,
        ``batch_size`` at a time, by keyset pagination on (first_seen, event_id): ``key`` reads
        those two from a row."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        t = tables.events
        base = select.where(t.c.site == site, t.c.first_seen >= start_utc, t.c.first_seen < end_utc)
        after: tuple[Any, Any] | None = None
        while True:
            stmt = base
            if after is not None:
                seen, eid = after
                stmt = stmt.where(
                    t.c.first_seen >= seen, sa.or_(t.c.first_seen > seen, t.c.event_id > eid)
                )
            stmt = stmt.order_by(t.c.first_seen, t.c.event_id).limit(batch_size)
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            yield rows
            if len(rows) < batch_size:
                return
            after = key(rows[-1])

    def count_events(
        self,
        site: str | None = None,
        start_utc: datetime | None = None,
        end_utc: datetime | None = None,
    ) -> int:
        """Number of events, optionally of one site and ``start_utc <= first_seen < end_utc``."""
        t = tables.events
        return self._count(t, t.c.first_seen, t.c.site, site, start_utc, end_utc)

    def count_dead_letters(
        self,
        site: str | None = None,
        start_utc: datetime | None = None,
        end_utc: datetime | None = None,
    ) -> int:
        """Number of dead letters, optionally of one site (from their topic) and received in
        ``start_utc <= received_at < end_utc``."""
        t = tables.dead_letters
        return self._count(t, t.c.received_at, t.c.site, site, start_utc, end_utc)

    def _count(
        self,
        table: sa.Table,
        time_col: sa.Column[Any],
        site_col: sa.Column[Any],
        site: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> int:
        stmt = sa.select(sa.func.count()).select_from(table)
        if site is not None:
            stmt = stmt.where(site_col == site)
        if start is not None:
            stmt = stmt.where(time_col >= start)
        if end is not None:
            stmt = stmt.where(time_col < end)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def dead_letters(
        self, *, site: str | None = None, since: datetime | None = None, limit: int = 50
    ) -> list[DeadLetterRow]:
        """The most recent dead letters, newest first."""
        t = tables.dead_letters
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if site is not None:
            stmt = stmt.where(t.c.site == site)
        if since is not None:
            stmt = stmt.where(t.c.received_at >= since)
        with self.engine.connect() as conn:
            return [DeadLetterRow.from_mapping(r) for r in conn.execute(stmt).mappings()]

    def dead_letter_reasons(self, *, site: str | None = None) -> dict[str, int]:
        t = tables.dead_letters
        stmt = sa.select(t.c.reason, sa.func.count()).group_by(t.c.reason).order_by(t.c.reason)
        if site is not None:
            stmt = stmt.where(t.c.site == site)
        with self.engine.connect() as conn:
            return {reason: int(n) for reason, n in conn.execute(stmt).all()}

    def agents(self, site: str | None = None) -> list[AgentRow]:
        """Latest known state of every agent (of one site), ordered by site, spot, agent."""
        t = tables.agents
        stmt = sa.select(t).order_by(t.c.site, t.c.spot, t.c.agent)
        if site is not None:
            stmt = stmt.where(t.c.site == site)
        with self.engine.connect() as conn:
            return [AgentRow.from_mapping(r) for r in conn.execute(stmt).mappings()]

    def sites(self) -> list[str]:
        """Sites that have events."""
        t = tables.events
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(t.c.site).distinct().order_by(t.c.site)).scalars())

    def coverage_intervals(
        self,
        site: str,
        start_utc: datetime,
        end_utc: datetime,
        *,
        heartbeat_interval: timedelta | None = None,
        gap_multiple: float | None = None,
    ) -> dict[str, list[Interval]]:
        """Per spot of ``site``: the intervals within [start_utc, end_utc) when an agent of that
        spot was online, as (start, end) aware UTC datetimes, sorted and non-overlapping.

        An interval runs from an online status or heartbeat and continues through heartbeats at
        most ``gap_multiple`` x ``heartbeat_interval`` apart; it ends at the last heartbeat before
        a longer silence, or at an offline status (see :mod:`aggregator.store.coverage`). Spots
        whose agents reported nothing in the range are absent from the result.
        """
        gap = (heartbeat_interval or self.heartbeat_interval) * (gap_multiple or self.gap_multiple)
        lo, hi = start_utc - gap, end_utc + gap
        t = tables.agent_status_history
        stmt = sa.select(t.c.spot, t.c.agent, t.c.state, t.c.sent_at, t.c.received_at).where(
            t.c.site == site,
            sa.or_(
                sa.and_(t.c.sent_at >= lo, t.c.sent_at < hi),
                sa.and_(
                    t.c.state == AgentState.OFFLINE.value,
                    t.c.received_at >= lo,
                    t.c.received_at < hi,
                ),
            ),
        )
        with self.engine.connect() as conn:
            points = [
                StatusPoint(r.spot, r.agent, AgentState(r.state), r.sent_at, r.received_at)
                for r in conn.execute(stmt)
            ]
        return spot_intervals(points, gap, start_utc, end_utc)


def _first_line(exc: DBAPIError) -> str:
    # The driver's message may quote the connection string (and with it a password).
    line = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
    return redact(line)


def _cannot_open(url: str, exc: OperationalError) -> StoreError:
    return StoreError(
        f"cannot open {redacted(url)}: {_first_line(exc)}; check store.url (or --store), the "
        "password and that the database is running"
    )


def schema_status(url: str, *, password: str | None = None) -> migrations.SchemaStatus:
    """Schema version of the store at ``url`` without changing anything."""
    engine = create_engine(url, password=password, must_exist=True)
    try:
        return migrations.status(engine)
    except OperationalError as exc:
        raise _cannot_open(url, exc) from None
    finally:
        engine.dispose()


def upgrade_schema(
    url: str, *, password: str | None = None, announce: int = logging.INFO
) -> list[migrations.Migration]:
    """Apply pending migrations to the store at ``url``; return those applied (each logged at
    ``announce``, see :func:`migrations.upgrade`)."""
    engine = create_engine(url, password=password)
    try:
        return migrations.upgrade(engine, announce=announce)
    except OperationalError as exc:
        raise _cannot_open(url, exc) from None
    finally:
        engine.dispose()

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
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from aggregator.errors import StoreError
from aggregator.store import migrations, tables
from aggregator.store.coverage import Interval, StatusPoint, spot_intervals
from aggregator.store.engine import create_engine, redacted
from aggregator.store.fast_insert import content_sha256, fast_event_insert
from aggregator.store.rows import (
    STATS_FIELDS,
    AgentRow,
    DeadLetter,
    DeadLetterRow,
    EventRow,
    StatusRecord,
    StoredEvent,
    status_values,
)
from footfall.contract import AgentState, PersonEvent
from footfall.redact import redact

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
DEFAULT_GAP_MULTIPLE = 3.0
_TEXT_LIMITS = {"source": 200, "topic": 1024, "reason": 32, "field": 200, "detail": 2000}


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


CONFLICT = "conflict"
"""Dead-letter reason of an event whose id is stored already with other content."""
_ID_CHUNK = 500  # ids per IN (...) list: far below SQLite's limit on bound parameters


def clean_text(value: str, limit: int) -> str:
    """Text that any backend accepts: no NUL (PostgreSQL refuses it), no lone surrogates, and at
    most ``limit`` characters."""
    value = value.replace("\x00", "\\x00")
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


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
            raise StoreError(f"cannot open {redacted(url)}: {_first_line(exc)}") from None
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
                    conflicts = self._conflicts(conn, batch.events)
                    result.events_conflict = len(conflicts)
                    letters += conflicts
                result.events_duplicate = len(batch.events) - inserted - result.events_conflict
            if letters:
                self._insert_dead_letters(conn, letters)
                result.dead_letters = len(letters)
            for record in batch.statuses:
                if self._record_status(conn, record):
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

    def _conflicts(self, conn: sa.Connection, items: Sequence[StoredEvent]) -> list[DeadLetter]:
        """Dead letters for the events of a just-inserted batch whose id is stored with other
        content. The stored copy (the first to arrive, or the first of this batch) stays.

        Equal content hashes mean a copy. Otherwise the stored event is read back and compared
        field by field, so a copy that differs only in its bytes (another serializer) is still
        a copy, and events stored before the hash column existed (no hash) are checked too.
        """
        t = tables.events
        ids = list(dict.fromkeys(i.event.event_id for i in items))
        hashes: dict[uuid.UUID, bytes | None] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            select = sa.select(t.c.event_id, t.c.content_sha256).where(t.c.event_id.in_(chunk))
            hashes.update((row.event_id, row.content_sha256) for row in conn.execute(select))
        suspects = [i for i in items if hashes.get(i.event.event_id) != content_sha256(i)]
        if not suspects:
            return []
        stored: dict[uuid.UUID, EventRow] = {}
        suspect_ids = list(dict.fromkeys(i.event.event_id for i in suspects))
        for start in range(0, len(suspect_ids), _ID_CHUNK):
            chunk = suspect_ids[start : start + _ID_CHUNK]
            for row in conn.execute(sa.select(t).where(t.c.event_id.in_(chunk))).mappings():
                found = EventRow.from_mapping(row)
                stored[found.event_id] = found
        letters = []
        for item in suspects:
            first = stored[item.event.event_id]
            differences = _differences(first.to_event(), item.event)
            if differences:
                letters.append(_conflict_letter(item, first, differences))
        return letters

    def _insert_dead_letters(self, conn: sa.Connection, items: Sequence[DeadLetter]) -> None:
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

    def _record_status(self, conn: sa.Connection, record: StatusRecord) -> bool:
        status = record.status
        values = status_values(status)
        key = {"site": status.site, "spot": status.spot, "agent": status.agent}
        history = (
            _insert(conn, tables.agent_status_history)
            .values(
                **key,
                channel=record.channel.value,
                sent_at=status.sent_at,
                received_at=record.received_at,
                **values,
            )
            .on_conflict_do_nothing()
            .returning(tables.agent_status_history.c.id)
        )
        if conn.execute(history).first() is None:
            return False
        first = (
            _insert(conn, tables.agents)
            .values(
                **key,
                first_seen_at=record.received_at,
                last_seen_at=record.received_at,
                last_sent_at=status.sent_at,
                last_channel=record.channel.value,
                state_since=record.received_at,
                **values,
            )
            .on_conflict_do_nothing()
            .returning(tables.agents.c.agent)
        )
        if conn.execute(first).first() is not None:
            return True
        t = tables.agents
        where = sa.and_(t.c.site == status.site, t.c.spot == status.spot, t.c.agent == status.agent)
        select = sa.select(t).where(where)
        if conn.dialect.name == "postgresql":
            select = select.with_for_update()
        current = conn.execute(select).mappings().one()
        changes: dict[str, Any] = {"last_seen_at": max(current["last_seen_at"], record.received_at)}
        newer = status.sent_at > current["last_sent_at"]
        # An online message older than what we have is a late copy and must not undo a later
        # offline. An offline message is always news: the broker's will carries the sent_at of
        # the connection it belongs to, so its time says nothing about its order.
        if status.state is AgentState.OFFLINE or newer:
            if status.state.value != current["state"]:
                changes["state_since"] = record.received_at
            if newer:
                changes["last_sent_at"] = status.sent_at
            changes["last_channel"] = record.channel.value
            for name, value in values.items():
                if name in STATS_FIELDS and status.stats is None:
                    continue
                changes[name] = value
        conn.execute(sa.update(t).where(where).values(**changes))
        return True

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        t = tables.events
        base = sa.select(t).where(
            t.c.site == site, t.c.first_seen >= start_utc, t.c.first_seen < end_utc
        )
        after: tuple[datetime, Any] | None = None
        while True:
            stmt = base
            if after is not None:
                seen, eid = after
                stmt = stmt.where(
                    t.c.first_seen >= seen,
                    sa.or_(t.c.first_seen > seen, t.c.event_id > eid),
                )
            stmt = stmt.order_by(t.c.first_seen, t.c.event_id).limit(batch_size)
            with self.engine.connect() as conn:
                rows = [EventRow.from_mapping(r) for r in conn.execute(stmt).mappings().all()]
            if not rows:
                return
            yield rows
            if len(rows) < batch_size:
                return
            after = (rows[-1].first_seen, rows[-1].event_id)

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        names = list(columns) if columns is not None else list(tables.events.c.keys())
        unknown = sorted(set(names) - set(tables.events.c.keys()))
        if unknown:
            raise ValueError(f"not columns of the events table: {', '.join(unknown)}")
        reader = _ColumnReader(self.engine.dialect.name, names)
        t = tables.events
        base = sa.select(*reader.select(t)).where(
            t.c.site == site, t.c.first_seen >= start_utc, t.c.first_seen < end_utc
        )
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
                raw = conn.execute(stmt).all()
            if not raw:
                return
            yield reader.columns(raw)
            if len(raw) < batch_size:
                return
            last = raw[-1]
            after = (last[-2], last[-1])

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


def _differences(stored: PersonEvent, other: PersonEvent) -> list[str]:
    """Dotted paths of the fields in which two events differ (nested records field by field)."""

    def walk(a: Any, b: Any, path: str) -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [d for key in a | b for d in walk(a.get(key), b.get(key), f"{path}{key}.")]
        return [] if a == b else [path.rstrip(".")]

    return walk(stored.model_dump(mode="json"), other.model_dump(mode="json"), "")


def _conflict_letter(item: StoredEvent, first: EventRow, differences: list[str]) -> DeadLetter:
    event = item.event
    shown = ", ".join(differences[:8]) + (", ..." if len(differences) > 8 else "")
    detail = (
        f"event {event.event_id} is stored already with other content ({shown}); the copy "
        f"stored first stays (received {first.received_at:%Y-%m-%d %H:%M:%S} UTC from "
        f"{first.source})"
    )
    log.warning(
        "conflicting duplicate from %s/%s/%s: %s", event.site, event.spot, event.agent, detail
    )
    payload = item.wire()
    return DeadLetter(
        received_at=item.received_at,
        source=item.where or item.source,
        topic=item.topic,
        site=event.site,
        spot=event.spot,
        agent=event.agent,
        reason=CONFLICT,
        field="event_id",
        detail=detail,
        payload=payload,
        payload_size=len(payload),
    )


def _first_line(exc: DBAPIError) -> str:
    # The driver's message may quote the connection string (and with it a password).
    line = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
    return redact(line)


def schema_status(url: str, *, password: str | None = None) -> migrations.SchemaStatus:
    """Schema version of the store at ``url`` without changing anything."""
    engine = create_engine(url, password=password, must_exist=True)
    try:
        return migrations.status(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open {redacted(url)}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def upgrade_schema(url: str, *, password: str | None = None) -> list[migrations.Migration]:
    """Apply pending migrations to the store at ``url``; return those applied."""
    engine = create_engine(url, password=password)
    try:
        return migrations.upgrade(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open {redacted(url)}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


class _ColumnReader:
    """Selects event columns with as little per-value work as the backend allows and turns the
    raw rows into the documented column types."""

    _TIMES = ("first_seen", "last_seen", "received_at")

    def __init__(self, dialect: str, names: list[str]) -> None:
        self.dialect = dialect
        self.names = names

    def select(self, t: sa.Table) -> list[Any]:
        # type_coerce to a plain type skips the per-value result processing of UtcDateTime, Uuid
        # and JSON; the conversion below is done column-wise instead. The key columns come last
        # in their stored form, for the keyset pagination.
        out: list[Any] = []
        for name in self.names:
            col = t.c[name]
            if name == "models" or (name == "event_id" and self.dialect == "postgresql"):
                out.append(sa.cast(col, sa.Text()))
            elif name in self._TIMES and self.dialect == "sqlite":
                out.append(sa.type_coerce(col, sa.Text()))
            else:
                out.append(sa.type_coerce(col, sa.types.NullType()))
        out += [t.c.first_seen, t.c.event_id]
        return out

    def columns(self, rows: Sequence[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for i, name in enumerate(self.names):
            values = [r[i] for r in rows]
            if name in self._TIMES:
                if self.dialect == "sqlite":
                    values = [
                        None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC)
                        for v in values
                    ]
                else:
                    values = [None if v is None else v.astimezone(UTC) for v in values]
            elif name == "event_id" and self.dialect == "sqlite":
                values = [str(uuid.UUID(hex=v)) for v in values]
            out[name] = values
        return out

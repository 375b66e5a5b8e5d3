"""The durable on-device outbox: every PersonEvent and its face crop is on disk before anything
is sent, and leaves only after an aggregator confirmed the event is in its store (a receipt) and
the object store holds the crop.

Why this module stays whole (about 700 lines, a third of them this description): :class:`Outbox`
is one transactional state machine over one file, and each rule below - the cap, the claims,
the confirmation, the byte-identical payloads - spans the put, publish and crop paths inside the
same transactions. Split into an events half and a crops half, the cap's rule would sit apart
from the put that triggers it. What does stand apart is in its own modules: the records and
errors it hands out (:mod:`edge_agent.delivery.outbox_records`) and the file itself - schema,
migration, per-thread connections, transactions (:mod:`edge_agent.delivery.outbox_file`).

Storage: one SQLite file (``<data_dir>/outbox.db``) in WAL mode.

- ``events``: one row per event. ``seq`` (``AUTOINCREMENT``, so never reused even after rows are
  deleted) is the order the pipeline emitted them in and the order they are published in.
  ``payload`` is the wire JSON exactly as it will be sent. ``published_at`` is set on the
  broker's PUBACK (and cleared when the event is to be published again); ``ever_published`` is
  set as soon as the sender hands the event to the connection and never cleared; ``confirmed_at`` when a receipt names the event (see "Confirmation" below);
  ``crop_state`` tracks the crop (none / pending / stored / dropped). A row is deleted once it is
  confirmed and its crop is no longer pending.
- ``crops``: the JPEG bytes of pending crops, keyed by ``seq``. Crops are kept as blobs in the
  same file rather than as files next to it: an event and its crop are committed in one
  transaction (one fsync, never an event without its crop or an orphaned file after a
  ``kill -9``), dropping a crop and writing the note into its event is one transaction too, and
  for blobs of 5-50 KB SQLite is as fast as the file system.
- ``crop_claims``: the crops whose upload has begun (in practice at most one: the uploader
  works oldest first, one crop at a time). See "Crops and the object store" below.
- ``counters``: lifetime counters and the byte gauge, updated in the same transactions as the
  rows they count, so they are exact after any crash.

Durability: a put commits with ``synchronous=FULL`` by default (the WAL is fsynced, so an
accepted event survives a power cut). Acknowledgements (published, crop stored) commit with
``synchronous=NORMAL``: in WAL mode that still survives a crash of the process, and what a power
cut can take back is only the latest acknowledgements, whose events are then sent again - a
duplicate the aggregator drops by event id, never a loss. That keeps the fsync off the
publishing hot path.

Cap: ``max_bytes`` bounds payloads plus pending crops. A put that would exceed it first drops
pending crops, oldest first (its own crop last, never the one being uploaded); an event whose
crop was dropped before it was published is rewritten with ``crop: null`` and a ``crop_note``
saying why. Events are never dropped: with the crops gone, events alone may go over the cap,
until the disk is really full and :class:`OutboxFullError` is raised. Low free disk space
(``min_free_disk_bytes``) triggers the same crop dropping.

Crops and the object store. Three rules hold together: (a) no orphan - every object in the
store is named by the event that leaves the device; (b) crops and events do not wait for each
other (crops go up while the broker is down, events go out while S3 is); (c) under the cap,
crops give way, events never. The cap drops the oldest pending crops, which are exactly the ones
the uploader is working on, and rewrites an unpublished event whose crop it dropped to
``crop: null``; had that crop's upload begun, its object would stay in the store with nothing
naming it (measured: 68 of 102 uploaded crops in a cap test against SeaweedFS). So a crop whose
upload has begun is never dropped: the uploader *claims* it (:meth:`Outbox.claim_crop`,
committed before the PUT starts) and the cap takes the next oldest unclaimed crop instead. A
claim ends when the crop is marked stored, or when the uploader itself gives the crop up after
checking that the store does not have it; never on a failed PUT, because a PUT that timed out
may still have reached the store. The price: the one crop under upload may keep the outbox over
its cap by its own size.

The alternatives break a rule. Deleting a dropped crop from the store afterwards leaves the
orphan there until the delete succeeds (forever if the process dies first, unless the deletes
are journalled too), needs delete rights for every device's credentials, and is wrong for a crop
whose event was already published, since the cloud's copy names it. Uploading a crop only once
its event is published breaks (b) - no crop leaves while the broker is down, none at all
without ``[mqtt]`` - and a crop can still be dropped mid-upload after publication.

What (a) does not cover: a crop dropped after its event went out (``crops_dropped_after_publish``)
leaves the cloud's event naming a key that will stay empty; it is counted and logged.

Confirmation. A broker's PUBACK says the broker took the event, not that it reached a store:
what a broker holds in memory (queued for an aggregator that is away, in flight to one that is
killed) is lost when it crashes or when that session ends. So with ``confirm = "receipt"`` (the
default) an event stays until an aggregator's :class:`~footfall.contract.Receipt` names it, sent
only after the batch holding it was committed. An event published but not confirmed goes back to
unsent when the sender decides its receipt is overdue (:meth:`Outbox.requeue_unconfirmed`) and is
published again; the store drops the copy by its id. With ``confirm = "broker"`` the PUBACK
confirms at once, the behaviour of a deployment whose aggregators send no receipts.

Once an event was published, its payload never changes again: a copy sent again must be
byte-identical, or the store would see two contents under one id (a conflict). So a crop dropped
after publication leaves the payload naming the crop (``crops_dropped_after_publish``).

Every connection belongs to one thread (a thread-local connection per :class:`Outbox`), so the
pipeline's puts, the publisher and the crop uploader never share one.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from edge_agent.config import OutboxSettings, Synchronous
from edge_agent.delivery.outbox_file import OUTBOX_FILE, SCHEMA_VERSION, OutboxFile, outbox_path
from edge_agent.delivery.outbox_records import (
    COUNTER_NAMES,
    NOTE_CORRUPT,
    NOTE_DISK_LOW,
    NOTE_OVER_CAP,
    CropState,
    OutboxCounters,
    OutboxEntry,
    OutboxError,
    OutboxFullError,
    OutboxStatus,
    PendingCrop,
)
from footfall.contract import PersonEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

_SQLITE_FULL = 13
# Host parameters per statement; SQLite's limit is far higher, this keeps statements short.
_CHUNK = 500


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _free_disk(path: Path) -> int:
    return shutil.disk_usage(path).free


class Outbox:
    """The outbox of one agent; also its :class:`~edge_agent.vision.sinks.EventSink`."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = OutboxSettings().max_bytes,
        min_free_disk_bytes: int = OutboxSettings().min_free_disk_bytes,
        synchronous: Synchronous = Synchronous.FULL,
        clock: Callable[[], float] = time.time,
        free_disk: Callable[[Path], int] = _free_disk,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if min_free_disk_bytes < 0:
            raise ValueError(f"min_free_disk_bytes must be >= 0, got {min_free_disk_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_free_disk_bytes = min_free_disk_bytes
        self.synchronous = Synchronous(synchronous)
        self._clock = clock
        self._free_disk = free_disk
        self._file = OutboxFile(self.path)
        self._listeners: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        self._last_pressure_log = float("-inf")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file.create()

    @classmethod
    def open(cls, data_dir: Path, settings: OutboxSettings) -> Outbox:
        return cls(
            outbox_path(data_dir),
            max_bytes=settings.max_bytes,
            min_free_disk_bytes=settings.min_free_disk_bytes,
            synchronous=settings.synchronous,
        )

    # -- connections and transactions ---------------------------------------------------------

    @staticmethod
    def _add(conn: sqlite3.Connection, name: str, delta: int) -> None:
        if delta:
            conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    def close(self) -> None:
        """Close every connection; the file stays as it is."""
        self._file.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listeners ------------------------------------------------------------------------------

    def subscribe(self) -> threading.Event:
        """An event that is set after every put; each consumer clears its own, then looks."""
        event = threading.Event()
        self._listeners.add(event)
        return event

    def _notify(self) -> None:
        for event in list(self._listeners):
            event.set()

    # -- the producer side ----------------------------------------------------------------------

    def emit(self, event: PersonEvent, crop_jpeg: bytes | None) -> None:
        """:class:`~edge_agent.vision.sinks.EventSink`: returns once the event is committed."""
        self.put(event, crop_jpeg)

    def put(self, event: PersonEvent, crop_jpeg: bytes | None) -> int:
        """Store one event (and its crop) durably; returns its ``seq``. An event id already in
        the outbox is not stored twice (counted as ``events_duplicate``)."""
        return self.put_many([(event, crop_jpeg)])[0]

    def put_many(self, items: Sequence[tuple[PersonEvent, bytes | None]]) -> list[int]:
        """Store several events in one transaction (one fsync); seqs in the given order."""
        prepared = [_Prepared.of(event, crop) for event, crop in items]
        if not prepared:
            return []
        try:
            seqs = self._put(prepared)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != _SQLITE_FULL:
                raise
            log.error("outbox: disk full; dropping every pending crop and trying once more")
            self._relieve_full_disk()
            try:
                seqs = self._put(prepared)
            except sqlite3.OperationalError as again:
                if getattr(again, "sqlite_errorcode", None) != _SQLITE_FULL:
                    raise
                raise OutboxFullError(
                    f"{self.path}: the disk is full even without any crops; "
                    f"{len(prepared)} event(s) NOT stored (first {prepared[0].event_id})"
                ) from None
        self._notify()
        return seqs

    def _put(self, prepared: list[_Prepared]) -> list[int]:
        now = self._clock()
        disk_low = self._free_disk(self.path.parent) < self.min_free_disk_bytes
        with self._file.tx(self.synchronous) as conn:
            fresh = self._skip_duplicates(conn, prepared)
            incoming = sum(p.size for p in fresh)
            total = _counter(conn, "bytes")
            over = total + incoming - self.max_bytes
            if disk_low:
                # Pages freed by dropped crops are reused by this insert, so freeing as much as
                # it needs keeps the file from growing.
                need, note = max(over, incoming), NOTE_DISK_LOW
            else:
                need, note = over, NOTE_OVER_CAP
            dropped = 0
            if need > 0:
                freed, dropped = self._drop_oldest_crops(conn, need, note)
                need -= freed
                for p in fresh:  # then the incoming crops, oldest first
                    if need <= 0:
                        break
                    if p.crop is not None:
                        need -= len(p.crop)
                        p.drop_crop(note)
                        dropped += 1
            seqs: dict[str, int] = {}
            for p in fresh:
                cur = conn.execute(
                    "INSERT INTO events(event_id, payload, created_at, crop_state, crop_key,"
                    " crop_sha256, crop_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        p.event_id,
                        p.payload,
                        now,
                        int(p.crop_state),
                        p.crop_key,
                        p.crop_sha256,
                        len(p.crop) if p.crop is not None else 0,
                    ),
                )
                seq = int(cur.lastrowid or 0)
                seqs[p.event_id] = seq
                if p.crop is not None:
                    conn.execute("INSERT INTO crops(seq, data) VALUES (?, ?)", (seq, p.crop))
            self._add(conn, "events_accepted", len(fresh))
            self._add(conn, "events_duplicate", len(prepared) - len(fresh))
            self._add(conn, "crops_accepted", sum(1 for p in fresh if p.had_crop))
            self._add(conn, "crops_dropped", sum(1 for p in fresh if p.dropped))
            self._add(conn, "bytes", sum(p.size for p in fresh))
            for p in prepared:
                if p.event_id not in seqs:
                    row = conn.execute(
                        "SELECT seq FROM events WHERE event_id = ?", (p.event_id,)
                    ).fetchone()
                    seqs[p.event_id] = int(row[0])
        if dropped or ((over > 0 or disk_low) and now - self._last_pressure_log > 60.0):
            self._last_pressure_log = now
            log.warning(
                "outbox: %s; %d crop(s) dropped just now, oldest first (events are always kept)",
                "disk nearly full" if disk_low else f"at its cap of {self.max_bytes} bytes",
                dropped,
            )
        return [seqs[p.event_id] for p in prepared]

    @staticmethod
    def _skip_duplicates(conn: sqlite3.Connection, prepared: list[_Prepared]) -> list[_Prepared]:
        seen: set[str] = set()
        fresh = []
        for p in prepared:
            if p.event_id in seen:
                continue
            seen.add(p.event_id)
            if conn.execute("SELECT 1 FROM events WHERE event_id = ?", (p.event_id,)).fetchone():
                continue
            fresh.append(p)
        return fresh

    def _drop_oldest_crops(self, conn: sqlite3.Connection, need: int, note: str) -> tuple[int, int]:
        """Drop pending crops oldest first until ``need`` bytes are freed or none is left;
        returns (bytes freed, crops dropped). A claimed crop (upload under way) is never
        dropped: its object may already be in the store."""
        freed = dropped = 0
        while freed < need:
            rows = conn.execute(
                "SELECT seq FROM events WHERE crop_state = 1"
                " AND seq NOT IN (SELECT seq FROM crop_claims) ORDER BY seq LIMIT 64"
            ).fetchall()
            if not rows:
                break
            for (seq,) in rows:
                freed += self._drop_crop(conn, seq, note) or 0
                dropped += 1
                if freed >= need:
                    break
        return freed, dropped

    def _drop_crop(self, conn: sqlite3.Connection, seq: int, note: str) -> int | None:
        """Drop one pending crop; returns the bytes it freed (its own and any payload change),
        or None if it was not pending."""
        row = conn.execute(
            "SELECT payload, ever_published, crop_bytes FROM events WHERE seq = ? AND crop_state = 1",
            (seq,),
        ).fetchone()
        if row is None:
            return None
        payload, published, crop_bytes = bytes(row[0]), bool(row[1]), int(row[2])
        freed = crop_bytes
        conn.execute("DELETE FROM crops WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM crop_claims WHERE seq = ?", (seq,))
        self._add(conn, "crops_dropped", 1)
        if not published:
            event = PersonEvent.model_validate_json(payload)
            noted = event.model_copy(update={"crop": None, "crop_note": note}).to_json()
            freed += len(payload) - len(noted)
            conn.execute(
                "UPDATE events SET payload = ?, crop_state = ?, crop_bytes = 0 WHERE seq = ?",
                (noted, int(CropState.DROPPED), seq),
            )
        else:
            # Published: the payload stays byte for byte (see "Confirmation"); the row goes once
            # the event is confirmed, which may be now.
            self._add(conn, "crops_dropped_after_publish", 1)
            conn.execute(
                "UPDATE events SET crop_state = ?, crop_bytes = 0 WHERE seq = ?",
                (int(CropState.DROPPED), seq),
            )
            gone = conn.execute(
                "DELETE FROM events WHERE seq = ? AND confirmed_at IS NOT NULL", (seq,)
            ).rowcount
            freed += len(payload) if gone else 0
            log.warning(
                "outbox: dropped the crop of already published event seq %d; the cloud's copy "
                "names a crop that will not be uploaded",
                seq,
            )
        self._add(conn, "bytes", -freed)
        return freed

    def _relieve_full_disk(self) -> None:
        try:
            with self._file.tx(Synchronous.NORMAL) as conn:
                self._drop_oldest_crops(conn, 1 << 62, NOTE_DISK_LOW)
            conn = self._file.conn()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA incremental_vacuum")
        except sqlite3.OperationalError as exc:
            log.error("outbox: could not free space on a full disk: %s", exc)

    # -- the publisher side ---------------------------------------------------------------------

    def next_unsent(self, limit: int, *, after_seq: int = 0) -> list[OutboxEntry]:
        """Up to ``limit`` events not yet acknowledged, with ``seq > after_seq``, in seq order."""
        rows = (
            self._file.conn()
            .execute(
                "SELECT seq, event_id, payload, created_at FROM events"
                " WHERE published_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            .fetchall()
        )
        return [OutboxEntry(int(s), str(e), bytes(p), float(c)) for s, e, p, c in rows]

    def take_unsent(
        self, limit: int, *, after_seq: int = 0, skip: Collection[int] = ()
    ) -> list[OutboxEntry]:
        """:meth:`next_unsent` for the sender, which publishes what it gets: in the same
        transaction the events are marked ``ever_published``, so from this moment a crop dropped
        under the cap no longer rewrites their payload (the broker may hold this copy, and a
        copy sent again must be identical). ``skip``: seqs still in flight."""
        held = tuple(skip)
        not_in = f" AND seq NOT IN ({_marks(len(held))})" if held else ""
        probe = self._file.conn().execute(
            f"SELECT 1 FROM events WHERE published_at IS NULL AND seq > ?{not_in} LIMIT 1",
            (after_seq, *held),
        )
        if probe.fetchone() is None:
            return []  # the idle sender asks often: no write transaction for nothing
        with self._file.tx(Synchronous.NORMAL) as conn:
            rows = conn.execute(
                "UPDATE events SET ever_published = 1 WHERE seq IN (SELECT seq FROM events"
                f" WHERE published_at IS NULL AND seq > ?{not_in} ORDER BY seq LIMIT ?)"
                " RETURNING seq, event_id, payload, created_at",
                (after_seq, *held, limit),
            ).fetchall()
        rows.sort(key=lambda r: int(r[0]))
        return [OutboxEntry(int(q), str(e), bytes(p), float(c)) for q, e, p, c in rows]

    def mark_published(self, seqs: Iterable[int], *, confirmed: bool = False) -> int:
        """The broker acknowledged these events; returns how many were newly marked.
        ``confirmed``: the PUBACK is all the confirmation there will be (``confirm = "broker"``)."""
        todo = sorted(set(seqs))
        if not todo:
            return 0
        marked = 0
        now = self._clock()
        confirm = ", confirmed_at = coalesce(confirmed_at, ?)" if confirmed else ""
        with self._file.tx(Synchronous.NORMAL) as conn:
            for part in _chunks(todo):
                marks = _marks(len(part))
                cur = conn.execute(
                    f"UPDATE events SET published_at = ?, ever_published = 1{confirm}"
                    f" WHERE published_at IS NULL"
                    f" AND seq IN ({marks})",
                    (now, now, *part) if confirmed else (now, *part),
                )
                marked += cur.rowcount
                if confirmed:
                    self._add(conn, "events_confirmed", cur.rowcount)
                self._remove_done(conn, f"seq IN ({marks})", part)
            self._add(conn, "events_published", marked)
        return marked

    def confirm(self, event_ids: Iterable[str]) -> int:
        """An aggregator's receipt: these events are in its store. Returns how many were newly
        confirmed (ids not in the outbox, or confirmed before, are ignored: a receipt may come
        twice, or after the event was confirmed by an earlier copy)."""
        todo = sorted(set(event_ids))
        if not todo:
            return 0
        confirmed = 0
        now = self._clock()
        with self._file.tx(Synchronous.NORMAL) as conn:
            for part in _chunks(todo):
                where = f"event_id IN ({_marks(len(part))})"
                confirmed += conn.execute(
                    f"UPDATE events SET confirmed_at = ?, published_at = coalesce(published_at, ?)"
                    f" WHERE confirmed_at IS NULL AND {where}",
                    (now, now, *part),
                ).rowcount
                self._remove_done(conn, where, part)
            self._add(conn, "events_confirmed", confirmed)
        return confirmed

    def requeue_unconfirmed(self, *, older_than_seconds: float) -> int:
        """Events published more than ``older_than_seconds`` ago and still not confirmed become
        unsent again, to be published once more; returns how many."""
        with self._file.tx(Synchronous.NORMAL) as conn:
            n = conn.execute(
                "UPDATE events SET published_at = NULL WHERE confirmed_at IS NULL"
                " AND published_at IS NOT NULL AND published_at < ?",
                (self._clock() - older_than_seconds,),
            ).rowcount
            self._add(conn, "events_requeued", n)
        return int(n)

    def oldest_unconfirmed_age(self) -> float | None:
        """Seconds since the longest-waiting published, unconfirmed event was published."""
        row = (
            self._file.conn()
            .execute(
                "SELECT min(published_at) FROM events"
                " WHERE confirmed_at IS NULL AND published_at IS NOT NULL"
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else max(0.0, self._clock() - row[0])

    def _remove_done(
        self, conn: sqlite3.Connection, where: str, params: Sequence[int | str]
    ) -> None:
        gone = conn.execute(
            f"DELETE FROM events WHERE {where}"
            " AND confirmed_at IS NOT NULL AND crop_state != 1 RETURNING length(payload)",
            tuple(params),
        ).fetchall()
        self._add(conn, "bytes", -sum(int(n) for (n,) in gone))

    # -- the crop uploader side -----------------------------------------------------------------

    def next_crops(self, limit: int, *, after_seq: int = 0) -> list[PendingCrop]:
        """Up to ``limit`` pending crops with ``seq > after_seq``, oldest first."""
        rows = (
            self._file.conn()
            .execute(
                "SELECT e.seq, e.event_id, e.crop_key, e.crop_sha256, c.data, e.created_at,"
                " k.seq IS NOT NULL"
                " FROM events e JOIN crops c ON c.seq = e.seq"
                " LEFT JOIN crop_claims k ON k.seq = e.seq"
                " WHERE e.crop_state = 1 AND e.seq > ? ORDER BY e.seq LIMIT ?",
                (after_seq, limit),
            )
            .fetchall()
        )
        return [
            PendingCrop(int(s), str(e), str(k), str(h), bytes(d), float(c), bool(claimed))
            for s, e, k, h, d, c, claimed in rows
        ]

    def claim_crop(self, seq: int) -> bool:
        """Say that the upload of this crop begins: from now on the cap will not drop it. False
        if it is no longer pending (the cap took it since :meth:`next_crops`): do not upload.

        Committed with the outbox's own durability (``synchronous``) before the caller starts
        the PUT, so a claim outlives a crash in the middle of the upload. With ``full`` that is
        one fsync per crop: measured 0.4 -> 2.8 ms per crop against an in-memory store on a
        plain SSD, small beside a PUT over the network."""
        with self._file.tx(self.synchronous) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM events WHERE seq = ? AND crop_state = 1", (seq,)
                ).fetchone()
                is None
            ):
                return False
            conn.execute("INSERT OR IGNORE INTO crop_claims(seq) VALUES (?)", (seq,))
        return True

    def crops_claimed(self) -> int:
        """Crops whose upload has begun and is not finished (kept whatever the cap says)."""
        return int(self._file.conn().execute("SELECT count(*) FROM crop_claims").fetchone()[0])

    def mark_crop_stored(self, seq: int) -> bool:
        """The object store holds this crop; returns False if it was no longer pending."""
        with self._file.tx(Synchronous.NORMAL) as conn:
            row = conn.execute(
                "SELECT crop_bytes FROM events WHERE seq = ? AND crop_state = 1", (seq,)
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "UPDATE events SET crop_state = ?, crop_bytes = 0 WHERE seq = ?",
                (int(CropState.STORED), seq),
            )
            conn.execute("DELETE FROM crops WHERE seq = ?", (seq,))
            conn.execute("DELETE FROM crop_claims WHERE seq = ?", (seq,))
            self._add(conn, "bytes", -int(row[0]))
            self._add(conn, "crops_stored", 1)
            self._remove_done(conn, "seq = ?", [seq])
        return True

    def drop_crop(self, seq: int, note: str) -> bool:
        """Give up on one pending crop (e.g. its bytes are corrupt); returns False if it was no
        longer pending. An unpublished event gets ``note`` as its ``crop_note``. This drops a
        claimed crop too: the caller (the uploader) knows its object is not in the store."""
        with self._file.tx(Synchronous.NORMAL) as conn:
            return self._drop_crop(conn, seq, note) is not None

    # -- inspection -----------------------------------------------------------------------------

    def counters(self) -> OutboxCounters:
        rows = dict(self._file.conn().execute("SELECT name, value FROM counters").fetchall())
        return OutboxCounters(**{name: int(rows.get(name, 0)) for name in COUNTER_NAMES})

    def depth(self) -> int:
        """Events not yet confirmed: the device still answers for them."""
        row = self._file.conn().execute("SELECT count(*) FROM events WHERE confirmed_at IS NULL")
        return int(row.fetchone()[0])

    def unsent(self) -> int:
        """Events not yet acknowledged by the broker (a part of :meth:`depth`)."""
        row = self._file.conn().execute("SELECT count(*) FROM events WHERE published_at IS NULL")
        return int(row.fetchone()[0])

    def has_unconfirmed(self) -> bool:
        """Cheaper than :meth:`depth` when only emptiness matters (one index probe)."""
        row = self._file.conn().execute("SELECT 1 FROM events WHERE confirmed_at IS NULL LIMIT 1")
        return row.fetchone() is not None

    def crops_pending(self) -> int:
        row = self._file.conn().execute("SELECT count(*) FROM events WHERE crop_state = 1")
        return int(row.fetchone()[0])

    def status(self) -> OutboxStatus:
        conn = self._file.conn()
        now = self._clock()
        # One read transaction, so the numbers belong to one moment.
        conn.execute("BEGIN")
        try:
            entries = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            depth = self.depth()
            crops = self.crops_pending()
            oldest = conn.execute(
                "SELECT created_at FROM events WHERE confirmed_at IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            oldest_crop = conn.execute(
                "SELECT created_at FROM events WHERE crop_state = 1 ORDER BY seq LIMIT 1"
            ).fetchone()
            total = _counter(conn, "bytes")
            counters = self.counters()
        finally:
            conn.execute("COMMIT")
        file_bytes = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return OutboxStatus(
            depth=depth,
            entries=entries,
            crops_pending=crops,
            bytes=total,
            max_bytes=self.max_bytes,
            file_bytes=file_bytes,
            oldest_unsent_age_seconds=max(0.0, now - oldest[0]) if oldest else None,
            oldest_crop_age_seconds=max(0.0, now - oldest_crop[0]) if oldest_crop else None,
            counters=counters,
        )


def _counter(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])


class _Prepared:
    """An event checked against its crop and encoded, ready to insert."""

    __slots__ = (
        "crop",
        "crop_key",
        "crop_sha256",
        "crop_state",
        "dropped",
        "event",
        "had_crop",
        "payload",
    )

    def __init__(self, event: PersonEvent, crop: bytes | None) -> None:
        self.event = event
        self.payload = event.to_json()
        self.crop = crop
        self.crop_key = event.crop.key if event.crop is not None else None
        self.crop_sha256 = event.crop.sha256 if event.crop is not None else None
        self.crop_state = CropState.PENDING if crop is not None else CropState.NONE
        self.had_crop = crop is not None
        self.dropped = False

    @classmethod
    def of(cls, event: PersonEvent, crop: bytes | None) -> _Prepared:
        ref = event.crop
        if ref is None and crop is not None:
            raise ValueError(f"event {event.event_id}: crop bytes given but event.crop is null")
        if ref is not None:
            if crop is None:
                raise ValueError(f"event {event.event_id}: event.crop is set but no crop bytes")
            if len(crop) != ref.size_bytes:
                raise ValueError(
                    f"event {event.event_id}: crop is {len(crop)} bytes, event.crop.size_bytes "
                    f"says {ref.size_bytes}"
                )
            digest = hashlib.sha256(crop).hexdigest()
            if digest != ref.sha256:
                raise ValueError(
                    f"event {event.event_id}: crop sha256 {digest} != event.crop.sha256 "
                    f"{ref.sha256}"
                )
        return cls(event, crop)

    @property
    def event_id(self) -> str:
        return str(self.event.event_id)

    @property
    def size(self) -> int:
        return len(self.payload) + (len(self.crop) if self.crop is not None else 0)

    def drop_crop(self, note: str) -> None:
        self.event = self.event.model_copy(update={"crop": None, "crop_note": note})
        self.payload = self.event.to_json()
        self.crop = None
        self.crop_key = self.crop_sha256 = None
        self.crop_state = CropState.DROPPED
        self.dropped = True


# The outbox's records and file live in their own modules; callers take them from here, with
# the outbox that hands them out.
__all__ = [
    "NOTE_CORRUPT",
    "NOTE_DISK_LOW",
    "NOTE_OVER_CAP",
    "OUTBOX_FILE",
    "SCHEMA_VERSION",
    "CropState",
    "Outbox",
    "OutboxCounters",
    "OutboxEntry",
    "OutboxError",
    "OutboxFullError",
    "OutboxStatus",
    "PendingCrop",
    "outbox_path",
]

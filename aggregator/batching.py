"""The ingest loop, independent of MQTT: gather deliveries into batches, commit each batch in one
transaction, then acknowledge exactly the deliveries of that batch.

A delivery is acknowledged only after its batch is committed, so a crash at any point leaves it
unacknowledged and the broker sends it again; the store's unique keys make the second copy a
no-op. When the store is unreachable the batch is retried with backoff and nothing is
acknowledged; the bounded queue then fills and pushes back on the broker connection. A batch the
database refuses for its content (which validation should make impossible) is split and stored
one message at a time, and a message that still cannot be stored becomes a ``store_error`` dead
letter, so one bad message can neither stop ingest nor be silently lost.
"""

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import sqlalchemy.exc as sa_exc

from aggregator.intake import Inbound, classify, dead_letter
from aggregator.store import CONFLICT, WriteBatch, WriteResult
from aggregator.validate import LiveWindow, Reason, Rejected

log = logging.getLogger(__name__)

STORE_ERROR = "store_error"


class BatchWriter(Protocol):
    """Where batches go: :class:`aggregator.store.EventStore`, or a fake in tests."""

    def write(self, batch: WriteBatch) -> WriteResult: ...


class Acknowledger(Protocol):
    """Sends the acknowledgements of committed deliveries (MQTT PUBACK)."""

    def ack(self, tokens: Sequence[object]) -> int:
        """Acknowledge ``tokens``; return how many were sent. Tokens from a connection that has
        since been lost must be skipped: the broker will send those messages again."""
        ...


class StopSignal(Protocol):
    """``threading.Event`` or ``multiprocessing.Event``: set when the service is stopping."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Inbound
    token: object | None  # what the acknowledger needs; None when there is nothing to ack


@dataclass
class IngestCounters:
    received: int = 0
    events_stored: int = 0
    events_duplicate: int = 0
    statuses_stored: int = 0
    statuses_duplicate: int = 0
    dead_letters: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    config_results: Counter[str] = field(default_factory=Counter)  # agents' answers by outcome
    batches: int = 0
    acked: int = 0
    ack_skipped: int = 0
    store_retries: int = 0

    def add(self, other: "IngestCounters") -> None:
        """Add ``other``'s counts to these (a batch committed elsewhere)."""
        for name, value in vars(other).items():
            if isinstance(value, Counter):
                getattr(self, name).update(value)
            else:
                setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items()))
        return (
            f"received {self.received}, events stored {self.events_stored} "
            f"(+{self.events_duplicate} duplicates), statuses {self.statuses_stored} "
            f"(+{self.statuses_duplicate} duplicates), dead letters {self.dead_letters}"
            f"{f' ({reasons})' if reasons else ''}, batches {self.batches}, acked {self.acked}, "
            f"ack skipped {self.ack_skipped}, store retries {self.store_retries}"
        )


Committer = Callable[[Sequence[Delivery], StopSignal], IngestCounters | None]
"""Validates and commits one batch and returns what it counted, or None if stopped before the
commit: :meth:`IngestLoop.commit` in this process, or
:class:`aggregator.commit_worker.CommitWorker` in a child process."""


def is_transient(exc: BaseException) -> bool:
    """A failure of the database connection rather than of the data: retrying can succeed."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(exc, sa_exc.TimeoutError | ConnectionError)


class IngestLoop:
    def __init__(
        self,
        writer: BatchWriter,
        acker: Acknowledger,
        *,
        prefix: str,
        max_payload_bytes: int,
        keep_bytes: int,
        batch_max_events: int = 500,
        batch_max_wait: float = 0.05,
        queue_size: int = 2000,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        stats_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        committer: Committer | None = None,
        window: LiveWindow | None = None,
    ) -> None:
        if batch_max_events < 1:
            raise ValueError(f"batch_max_events must be >= 1, got {batch_max_events}")
        if queue_size < batch_max_events:
            raise ValueError(
                f"queue_size ({queue_size}) must be >= batch_max_events ({batch_max_events})"
            )
        self.writer = writer
        self.acker = acker
        self.prefix = prefix
        self.max_payload_bytes = max_payload_bytes
        self.keep_bytes = keep_bytes
        self.window = window
        self.batch_max_events = batch_max_events
        self.batch_max_wait = batch_max_wait
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.stats_interval = stats_interval
        self.clock = clock
        self.counters = IngestCounters()
        self.committer: Committer = committer or self.commit
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()

    # -- producer side (the broker client's thread) --------------------------------------------

    def offer(self, delivery: Delivery) -> bool:
        """Queue a delivery, waiting while the queue is full (backpressure). Returns False if the
        loop is closing; the delivery then stays unacknowledged and comes again later."""
        while not self._closing.is_set():
            try:
                self._queue.put(delivery, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    # -- consumer side ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set, then whatever is already queued."""
        next_stats = self.clock() + self.stats_interval
        try:
            while not stop.is_set():
                batch = self._gather(stop)
                if batch:
                    self.process(batch, stop)
                if self.clock() >= next_stats:
                    log.info("ingest: %s", self.counters.summary())
                    next_stats = self.clock() + self.stats_interval
            self.drain(stop)
        finally:
            self._closing.set()

    def drain(self, stop: threading.Event | None = None) -> None:
        """Commit and acknowledge what is queued now (used at shutdown and by tests)."""
        pending: list[Delivery] = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for i in range(0, len(pending), self.batch_max_events):
            self.process(pending[i : i + self.batch_max_events], stop or threading.Event())

    def _gather(self, stop: threading.Event) -> list[Delivery]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = self.clock() + self.batch_max_wait
        while len(batch) < self.batch_max_events:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - self.clock()
            if remaining <= 0 or stop.is_set():
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def process(self, deliveries: Sequence[Delivery], stop: StopSignal) -> bool:
        """Validate, commit and acknowledge one batch. False if stopped before it was committed
        (nothing acknowledged then)."""
        counted = self.committer(deliveries, stop)
        if counted is None:
            return False
        self.counters.add(counted)
        tokens = [d.token for d in deliveries if d.token is not None]
        if tokens:
            sent = self.acker.ack(tokens)
            self.counters.acked += sent
            self.counters.ack_skipped += len(tokens) - sent
        return True

    def commit(self, deliveries: Sequence[Delivery], stop: StopSignal) -> IngestCounters | None:
        """Validate and commit one batch (no acknowledgement); what it counted, or None if
        stopped before the commit."""
        counted = IngestCounters(received=len(deliveries))
        classified = classify(
            [d.message for d in deliveries],
            prefix=self.prefix,
            max_payload_bytes=self.max_payload_bytes,
            keep_bytes=self.keep_bytes,
            window=self.window,
        )
        result = self._write(classified.batch, [d.message for d in deliveries], stop, counted)
        if result is None:
            return None
        counted.batches = 1
        counted.events_stored = result.events_inserted
        counted.events_duplicate = result.events_duplicate
        counted.statuses_stored = result.statuses_inserted
        counted.statuses_duplicate = result.statuses_duplicate
        counted.dead_letters = result.dead_letters
        counted.rejected.update(classified.rejected)
        if result.events_conflict:
            counted.rejected[CONFLICT] += result.events_conflict
        counted.config_results.update(classified.config_results)
        return counted

    def _write(
        self,
        batch: WriteBatch,
        messages: Sequence[Inbound],
        stop: StopSignal,
        counted: IngestCounters,
    ) -> WriteResult | None:
        delay = self.retry_min
        while True:
            try:
                try:
                    return self.writer.write(batch)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    log.error(
                        "store refused a batch of %d (%s); storing it message by message",
                        len(batch),
                        _one_line(exc),
                    )
                    return self._write_singly(messages, counted)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                counted.store_retries += 1
                log.warning(
                    "store unavailable (%s); batch of %d kept unacknowledged, retrying in %.1f s",
                    _one_line(exc),
                    len(batch),
                    delay,
                )
            if stop.wait(delay):
                return None
            delay = min(delay * 2, self.retry_max)

    def _write_singly(self, messages: Sequence[Inbound], counted: IngestCounters) -> WriteResult:
        total = WriteResult()
        for message in messages:
            single = classify(
                [message],
                prefix=self.prefix,
                max_payload_bytes=self.max_payload_bytes,
                keep_bytes=self.keep_bytes,
                window=self.window,
            ).batch
            try:
                result = self.writer.write(single)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("message from %s cannot be stored: %s", message.topic, _one_line(exc))
                failure = Rejected(Reason.INVALID, None, f"{type(exc).__name__}: {_one_line(exc)}")
                letter = replace(dead_letter(message, failure, self.keep_bytes), reason=STORE_ERROR)
                counted.rejected[STORE_ERROR] += 1
                result = self.writer.write(WriteBatch(dead_letters=[letter]))
            total.events_inserted += result.events_inserted
            total.events_duplicate += result.events_duplicate
            total.events_conflict += result.events_conflict
            total.statuses_inserted += result.statuses_inserted
            total.statuses_duplicate += result.statuses_duplicate
            total.dead_letters += result.dead_letters
        return total


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Validation and commit in a child process, so one aggregator uses two cores.

In one Python process the broker client's network thread and the ingest thread take turns on
the interpreter lock: measured with the real broker and PostgreSQL, one process committed about
2,600 events/s while a bare paho client that only acknowledges takes about 10,000 here. With
``ingest.commit_process`` on (the default), the parent keeps the broker connection, the queue and
the acknowledgements; a child process (started with ``spawn``, with its own store connection)
validates and commits each batch and returns what it counted. The guarantee is unchanged: the
parent acknowledges a batch only after the child reports it committed.

If the child dies, the batch in flight stays unacknowledged (the broker sends it again) and the
service stops with an error naming the exit code; the supervisor (systemd, Kubernetes) restarts
it. If the parent dies, the child sees its pipe close and exits.
"""

import contextlib
import logging
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent

from aggregator.batching import BatchWriter, Delivery, IngestCounters, IngestLoop, StopSignal
from aggregator.config import FleetSettings, IngestSettings, StoreSettings
from aggregator.errors import IngestError
from aggregator.intake import Inbound
from aggregator.store.open import open_store
from footfall.redact import redact_logs

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_START_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class _Job:
    """What the child needs to build its half (pickled to it once)."""

    store: StoreSettings
    fleet: FleetSettings
    ingest: IngestSettings
    prefix: str


class _NoAcks:
    def ack(self, tokens: Sequence[object]) -> int:  # the parent acknowledges
        return 0


def committing_loop(writer: BatchWriter, ingest: IngestSettings, prefix: str) -> IngestLoop:
    """The half of the ingest loop that validates and commits what it is handed (its
    :meth:`~aggregator.batching.IngestLoop.commit`), with every rule of live ingest: the size
    limit, the dead-letter payload size and the time window around the aggregator's clock."""
    return IngestLoop(
        writer,
        _NoAcks(),
        prefix=prefix,
        max_payload_bytes=ingest.max_payload_bytes,
        keep_bytes=ingest.dead_letter_payload_bytes,
        batch_max_events=ingest.batch_max_events,
        queue_size=ingest.batch_max_events,  # unused: batches come from the caller
        window=ingest.live_window(),
    )


def _child(job: _Job, conn: Connection, stop: MpEvent) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact_logs()  # a spawned child starts without the parent's log setup
    try:
        store = open_store(job.store, job.fleet, upgrade=False)  # the parent upgraded it
    except Exception as exc:  # reported to the parent, which stops the service
        conn.send(f"the commit process cannot open the store: {exc}")
        return
    loop = committing_loop(store, job.ingest, job.prefix)
    conn.send("ready")
    try:
        while True:
            try:
                deliveries = conn.recv()
            except EOFError:  # the parent is gone
                return
            if deliveries is None:
                return
            batch = [Delivery(Inbound(*fields), None) for fields in deliveries]
            conn.send(loop.commit(batch, stop))
    except (BrokenPipeError, EOFError):
        return
    finally:
        store.close()


class CommitWorker:
    """The parent's handle on the child: a :data:`aggregator.batching.Committer`."""

    def __init__(
        self,
        store: StoreSettings,
        fleet: FleetSettings,
        ingest: IngestSettings,
        prefix: str,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._conn, child_conn = ctx.Pipe()
        self._process = ctx.Process(
            target=_child,
            args=(_Job(store, fleet, ingest, prefix), child_conn, self._stop),
            name="footfall-commit",
            daemon=True,
        )
        self._process.start()
        child_conn.close()
        if not self._conn.poll(_START_TIMEOUT_SECONDS):
            self.close()
            raise IngestError("the commit process did not start")
        try:
            answer = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(timeout=5)
            raise IngestError(
                f"the commit process could not start (exit code {self._process.exitcode}); "
                "its error is above"
            ) from None
        if answer != "ready":
            self.close()
            raise IngestError(str(answer))

    def __call__(self, deliveries: Sequence[Delivery], stop: StopSignal) -> IngestCounters | None:
        # Plain tuples pickle several times faster than the dataclasses; the acknowledgement
        # tokens stay here.
        messages = [
            (m.topic, m.payload, m.received_at, m.source, m.where)
            for m in (d.message for d in deliveries)
        ]
        try:
            self._conn.send(messages)
        except (BrokenPipeError, OSError):
            raise self._died() from None
        while not self._conn.poll(_POLL_SECONDS):
            if stop.is_set():
                self._stop.set()  # ends a store retry in the child; a running commit finishes
            if not self._process.is_alive():
                raise self._died()
        counted = self._receive()
        if counted is not None and not isinstance(counted, IngestCounters):
            raise IngestError(f"unexpected answer from the commit process: {counted!r}")
        return counted

    def _receive(self) -> object:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None

    def _died(self) -> IngestError:
        self._process.join(timeout=5)
        return IngestError(
            f"the commit process ended (exit code {self._process.exitcode}); the batch in flight "
            "was not acknowledged and will be delivered again"
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def close(self) -> None:
        """Stop the child after its current batch."""
        self._stop.set()
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            log.warning("the commit process did not stop; terminating it")
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()

"""The ingest loop without a broker: commit first, then acknowledge exactly what was committed;
keep everything unacknowledged while the store is down; never let one bad message stop ingest."""

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy.exc as sa_exc

from aggregator.batching import Delivery, IngestLoop, is_transient
from aggregator.intake import Inbound
from aggregator.store import EventStore, WriteBatch, WriteResult
from footfall.contract.examples import example_event, example_status

PREFIX = "footfall/v1"
TOPIC = "footfall/v1/site-a/spot-1/agent-1/events"
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


class Journal:
    """Fake writer and acknowledger that record the order of what happens."""

    def __init__(self, store: EventStore | None = None) -> None:
        self.store = store
        self.steps: list[tuple[str, object]] = []
        self.failures: list[BaseException] = []  # raised by the next writes, in order
        self.refuse: bytes | None = None  # a payload the "database" refuses in any batch

    def write(self, batch: WriteBatch) -> WriteResult:
        if self.failures:
            raise self.failures.pop(0)
        if self.refuse is not None and any(e.event.to_json() == self.refuse for e in batch.events):
            raise sa_exc.IntegrityError("INSERT", {}, Exception("value too long"))
        self.steps.append(("write", len(batch)))
        if self.store is not None:
            return self.store.write(batch)
        return WriteResult(events_inserted=len(batch.events), dead_letters=len(batch.dead_letters))

    def ack(self, tokens: Sequence[object]) -> int:
        self.steps.append(("ack", list(tokens)))
        return len(tokens)


def _operational() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection"))


def _delivery(n: int, payload: bytes | None = None, topic: str = TOPIC) -> Delivery:
    payload = payload if payload is not None else example_event(track_id=n).to_json()
    return Delivery(Inbound(topic, payload, NOW, "mqtt:test"), token=n)


def _loop(journal: Journal, **kwargs: object) -> IngestLoop:
    options: dict[str, object] = {
        "prefix": PREFIX,
        "max_payload_bytes": 16384,
        "keep_bytes": 4096,
        "retry_min": 0.001,
        "retry_max": 0.002,
    }
    options.update(kwargs)
    return IngestLoop(journal, journal, **options)  # type: ignore[arg-type]


def test_a_batch_is_acknowledged_after_it_is_committed_and_only_it() -> None:
    journal = Journal()
    loop = _loop(journal)
    assert loop.process([_delivery(1), _delivery(2), _delivery(3, b"junk")], threading.Event())
    assert journal.steps == [("write", 3), ("ack", [1, 2, 3])]
    assert loop.counters.rejected == {"invalid": 1}


def test_store_outage_keeps_the_batch_unacknowledged_until_it_commits() -> None:
    journal = Journal()
    journal.failures = [_operational(), _operational()]
    loop = _loop(journal)
    assert loop.process([_delivery(1)], threading.Event())
    assert journal.steps == [("write", 1), ("ack", [1])]
    assert loop.counters.store_retries == 2


def test_stopping_during_an_outage_acknowledges_nothing() -> None:
    journal = Journal()
    journal.failures = [_operational()] * 100
    stop = threading.Event()
    stop.set()
    assert not _loop(journal).process([_delivery(1)], stop)
    assert journal.steps == []


def test_a_message_the_database_refuses_becomes_a_store_error_dead_letter() -> None:
    journal = Journal()
    poison = example_event(track_id=99).to_json()
    journal.refuse = poison
    loop = _loop(journal)
    assert loop.process([_delivery(1), _delivery(99, poison), _delivery(2)], threading.Event())
    assert journal.steps == [("write", 1), ("write", 1), ("write", 1), ("ack", [1, 99, 2])]
    assert loop.counters.rejected == {"store_error": 1}
    assert loop.counters.events_stored == 2 and loop.counters.dead_letters == 1


def test_the_same_event_delivered_three_times_is_stored_once(tmp_path: Path) -> None:
    store = EventStore.open(f"sqlite:///{tmp_path / 's.db'}")
    journal = Journal(store)
    loop = _loop(journal)
    payload = example_event().to_json()
    for n in range(3):  # three separate redeliveries, each in its own batch
        assert loop.process([_delivery(n, payload)], threading.Event())
    assert store.count_events() == 1
    assert (loop.counters.events_stored, loop.counters.events_duplicate) == (1, 2)
    assert loop.counters.acked == 3
    store.close()


def test_running_loop_batches_what_producers_offer_and_drains_on_stop(tmp_path: Path) -> None:
    store = EventStore.open(f"sqlite:///{tmp_path / 's.db'}")
    journal = Journal(store)
    loop = _loop(journal, batch_max_events=100, batch_max_wait=0.01, queue_size=200)
    stop = threading.Event()
    worker = threading.Thread(target=loop.run, args=(stop,))
    worker.start()
    status_topic = TOPIC.replace("events", "heartbeat")
    for n in range(1000):
        assert loop.offer(_delivery(n))
    assert loop.offer(Delivery(Inbound(status_topic, example_status().to_json(), NOW, "m"), -1))
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert store.count_events() == 1000
    acked = [
        t
        for step, tokens in journal.steps
        if step == "ack" and isinstance(tokens, list)
        for t in tokens
    ]
    assert sorted(acked) == [-1, *range(1000)]
    sizes = [n for step, n in journal.steps if step == "write" and isinstance(n, int)]
    assert sum(sizes) == 1001 and max(sizes) <= 100
    assert loop.counters.statuses_stored == 1
    assert not loop.offer(_delivery(5000)), "a closed loop refuses new deliveries"
    store.close()


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_operational(), True),
        (sa_exc.IntegrityError("x", {}, Exception("dup")), False),
        (sa_exc.DataError("x", {}, Exception("too long")), False),
        (ValueError("naive datetime"), False),
        (ConnectionResetError(), True),
    ],
)
def test_transient_errors_are_told_apart_from_data_errors(
    exc: BaseException, transient: bool
) -> None:
    assert is_transient(exc) is transient

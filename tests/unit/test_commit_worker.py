"""The commit process: batches validated and committed in a real child process, counted back to
the parent, and a dead child reported instead of acknowledged."""

import os
import random
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.batching import Delivery, IngestLoop
from aggregator.commit_worker import CommitWorker, committing_loop
from aggregator.config import FleetSettings, IngestSettings, StoreSettings
from aggregator.errors import IngestError
from aggregator.intake import Inbound
from aggregator.store import WriteBatch, WriteResult
from aggregator.store.open import open_store
from footfall.contract.examples import random_events
from tests.ingest_support import event_messages

PREFIX = "footfall/v1"


class NotHere:
    """The parent's writer: never used when a child commits."""

    def write(self, batch: WriteBatch) -> WriteResult:
        raise AssertionError("the parent wrote a batch itself")


class Tokens:
    def __init__(self) -> None:
        self.acked: list[object] = []

    def ack(self, tokens: Sequence[object]) -> int:
        self.acked += tokens
        return len(tokens)


@pytest.fixture
def settings(tmp_path: Path) -> StoreSettings:
    store = StoreSettings(url=f"sqlite:///{tmp_path / 'events.db'}")
    open_store(store).close()  # the service upgrades the schema before starting the child
    return store


@pytest.fixture
def worker(settings: StoreSettings) -> Iterator[CommitWorker]:
    # The test events are dated 2026-05-01 whatever day the suite runs on.
    w = CommitWorker(settings, FleetSettings(), IngestSettings(event_max_age_days=36500), PREFIX)
    yield w
    w.close()


def _deliveries(n_good: int) -> list[Delivery]:
    now = datetime.now(UTC)
    messages = event_messages(random_events(n_good, rng=random.Random(3)), PREFIX)
    messages.append((f"{PREFIX}/site-a/spot-1/agent-spot-1/events", b"{not json"))
    return [
        Delivery(Inbound(topic, payload, now, "mqtt:test"), ("token", i))
        for i, (topic, payload) in enumerate(messages)
    ]


def test_batches_are_committed_in_the_child_and_acknowledged_by_the_parent(
    worker: CommitWorker, settings: StoreSettings
) -> None:
    acks = Tokens()
    loop = IngestLoop(
        NotHere(),
        acks,
        prefix=PREFIX,
        max_payload_bytes=65536,
        keep_bytes=1024,
        committer=worker,
    )
    batch = _deliveries(40)
    assert loop.process(batch, threading.Event())
    assert loop.process(batch, threading.Event())  # redelivered: stored once
    c = loop.counters
    assert (c.received, c.batches, c.events_stored, c.events_duplicate) == (82, 2, 40, 40)
    assert (c.dead_letters, c.rejected["invalid"], c.acked) == (2, 2, 82)
    assert acks.acked == [d.token for d in batch] * 2
    assert worker.pid != os.getpid()
    store = open_store(settings, upgrade=False)
    try:
        assert (store.count_events(), store.count_dead_letters()) == (40, 2)
    finally:
        store.close()


def test_a_dead_child_is_an_error_and_nothing_is_acknowledged(worker: CommitWorker) -> None:
    acks = Tokens()
    loop = IngestLoop(
        NotHere(),
        acks,
        prefix=PREFIX,
        max_payload_bytes=65536,
        keep_bytes=1024,
        committer=worker,
    )
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(IngestError, match="commit process ended"):
        loop.process(_deliveries(3), threading.Event())
    assert acks.acked == []


def test_a_store_the_child_cannot_open_fails_at_start(tmp_path: Path) -> None:
    missing = StoreSettings(url=f"sqlite:///{tmp_path / 'nowhere' / 'events.db'}")
    with pytest.raises(IngestError, match="cannot open the store"):
        CommitWorker(missing, FleetSettings(), IngestSettings(), PREFIX)


def test_the_commit_process_holds_live_events_to_the_window(settings: StoreSettings) -> None:
    # Events dated 2026-05-01, received on 2027-06-01: more than a 30-day window ago.
    ingest = IngestSettings(event_max_age_days=30)
    worker = CommitWorker(settings, FleetSettings(), ingest, PREFIX)
    try:
        received = datetime(2027, 6, 1, tzinfo=UTC)
        messages = event_messages(random_events(3, rng=random.Random(4)), PREFIX)
        batch = [Delivery(Inbound(t, p, received, "mqtt:test"), None) for t, p in messages]
        counted = worker(batch, threading.Event())
    finally:
        worker.close()
    assert counted is not None
    assert (counted.events_stored, counted.rejected) == (0, {"out_of_window": 3})


def test_the_in_process_committer_applies_the_same_window(settings: StoreSettings) -> None:
    store = open_store(settings)
    try:
        loop = committing_loop(store, IngestSettings(event_max_age_days=30), PREFIX)
        received = datetime(2027, 6, 1, tzinfo=UTC)
        messages = event_messages(random_events(2, rng=random.Random(5)), PREFIX)
        counted = loop.commit(
            [Delivery(Inbound(t, p, received, "mqtt:test"), None) for t, p in messages],
            threading.Event(),
        )
    finally:
        store.close()
    assert counted is not None and counted.rejected == {"out_of_window": 2}

"""At least 10,000 generated bad messages through the real validation and store: every one ends
up in the dead letters, nothing raises, and good events in the same batches are still stored."""

import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.batching import Delivery, IngestLoop
from aggregator.intake import Inbound
from aggregator.store import EventStore
from footfall.contract.examples import random_events
from tests.fuzz_payloads import PREFIX, BadMessage, bad_messages

EXAMPLES = 200
PER_EXAMPLE = 50
GOOD_PER_EXAMPLE = 3


class CountingAcker:
    def __init__(self) -> None:
        self.acked = 0

    def ack(self, tokens: Sequence[object]) -> int:
        self.acked += len(tokens)
        return len(tokens)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("pg_database").url
    s = EventStore.open(url)
    yield s
    s.close()


@pytest.mark.slow
def test_ten_thousand_bad_messages_become_dead_letters_and_good_ones_are_stored(
    store: EventStore,
) -> None:
    acker = CountingAcker()
    loop = IngestLoop(store, acker, prefix=PREFIX, max_payload_bytes=16384, keep_bytes=4096)
    rng = random.Random(0)
    kinds: Counter[str] = Counter()
    good_total = 0
    now = datetime.now(UTC)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bad_messages(), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def feed(bad: list[BadMessage]) -> None:
        nonlocal good_total
        good = [
            Inbound(f"{PREFIX}/{e.site}/{e.spot}/{e.agent}/events", e.to_json(), now, "mqtt:fuzz")
            for e in random_events(GOOD_PER_EXAMPLE, rng=rng)
        ]
        messages = [Inbound(m.topic, m.payload, now, "mqtt:fuzz") for m in bad] + good
        rng.shuffle(messages)
        deliveries = [Delivery(m, token=i) for i, m in enumerate(messages)]
        rejected_before = sum(loop.counters.rejected.values())
        assert loop.process(deliveries, threading.Event())
        assert sum(loop.counters.rejected.values()) - rejected_before == len(bad), [
            m.kind for m in bad
        ]
        kinds.update(m.kind for m in bad)
        good_total += len(good)

    feed()
    bad_total = sum(kinds.values())
    assert bad_total >= 10_000
    assert store.count_dead_letters() == bad_total
    assert store.count_events() == good_total
    assert acker.acked == bad_total + good_total
    assert set(kinds) == {
        "broken_json",
        "wrong_type",
        "missing_field",
        "huge_string",
        "control_char",
        "formula_in_id_or_enum",
        "contradiction",
        "wrong_identity",
        "too_large",
        "bad_topic",
    }
    assert min(kinds.values()) >= 200, kinds

"""Ingest against the real services: Mosquitto (MQTT 5, shared subscriptions) and PostgreSQL,
with real aggregator processes that are killed and restarted."""

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.store import EventStore, tables
from aggregator.validate import Rejected, validate
from footfall.contract import AgentState
from footfall.contract.examples import example_event, example_status, random_events
from infra.devservices import BrokerUser
from tests.fuzz_payloads import PREFIX, BadMessage, bad_messages
from tests.ingest_support import (
    AggregatorProcess,
    BrokerAccess,
    Publisher,
    aggregator_config,
    event_messages,
    wait_for,
)
from tests.services import MqttNamespace, PgDatabase

pytestmark = pytest.mark.services


@dataclass(frozen=True)
class Setup:
    """One test's corner of the shared services."""

    ns: MqttNamespace
    db: PgDatabase

    @property
    def prefix(self) -> str:
        return self.ns.prefix

    def access(self, user: BrokerUser) -> BrokerAccess:
        broker = self.ns.broker
        return BrokerAccess(broker.host, broker.tls_port, user.name, user.password, broker.ca_file)

    @property
    def admin(self) -> BrokerAccess:
        """Publishes anywhere: for traffic no single agent account could send."""
        return self.access(self.ns.admin)

    @property
    def agent(self) -> BrokerAccess:
        """site-a/spot-1/agent-1, allowed to publish only on its own topics."""
        return self.access(self.ns.agents[0])

    @property
    def store_url_without_password(self) -> str:
        db = self.db
        return f"postgresql+psycopg://{db.user}@{db.host}:{db.port}/{db.name}"


@pytest.fixture
def setup(mqtt_namespace: MqttNamespace, pg_database: PgDatabase) -> Setup:
    return Setup(mqtt_namespace, pg_database)


@pytest.fixture
def store(setup: Setup) -> Iterator[EventStore]:
    s = EventStore.open(setup.db.url)
    yield s
    s.close()


@pytest.fixture
def spawn(tmp_path: Path, setup: Setup) -> Iterator[Callable[..., AggregatorProcess]]:
    """Starts real aggregator processes (``python -m aggregator run``) on the test's namespace;
    every one is stopped at the end."""
    started: list[AggregatorProcess] = []
    group = f"g{random.getrandbits(32):08x}"

    def make(name: str, **kwargs: str) -> AggregatorProcess:
        config = aggregator_config(
            tmp_path / f"{name}.toml",
            setup.access(setup.ns.aggregator),
            setup.store_url_without_password,
            client_id=f"{group}-{name}",
            group=group,
            prefix=setup.prefix,
            **kwargs,
        )
        env = {
            "FOOTFALL_AGGREGATOR__MQTT__PASSWORD": setup.ns.aggregator.password,
            "FOOTFALL_AGGREGATOR__STORE__PASSWORD": setup.db.password,
        }
        proc = AggregatorProcess(config, tmp_path / f"{name}.log", env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def _sources(store: EventStore) -> dict[str, int]:
    t = tables.events
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.source, sa.func.count()).group_by(t.c.source)).all()
    return {source: int(n) for source, n in rows}


def test_the_same_event_delivered_three_times_is_stored_once(
    spawn: Callable[..., AggregatorProcess], setup: Setup, store: EventStore
) -> None:
    aggregator = spawn("a1").start()
    aggregator.wait_connected()
    agent = Publisher(setup.agent, "agent-1")  # the agent's own account, TLS, its ACL
    event, marker = example_event(), example_event(track_id=2)
    agent.publish(event_messages([event], setup.prefix) * 3)
    agent.publish(event_messages([marker], setup.prefix))
    agent.close()
    wait_for(lambda: store.count_events() == 2, 30, "the marker event")
    assert aggregator.stop() == 0
    assert store.count_events() == 2
    assert "(+2 duplicates)" in aggregator.log_text()


def test_two_aggregators_on_one_shared_subscription_split_the_events(
    spawn: Callable[..., AggregatorProcess], setup: Setup, store: EventStore
) -> None:
    first, second = spawn("a1").start(), spawn("a2").start()
    first.wait_connected()
    second.wait_connected()
    events = random_events(4000, rng=random.Random(11), spots=("north", "south"))
    publisher = Publisher(setup.admin, "two-aggs")
    publisher.publish(event_messages(events, setup.prefix))
    publisher.close()
    wait_for(lambda: store.count_events() == 4000, 60, "all 4000 events")
    by_source = _sources(store)
    assert sum(by_source.values()) == 4000
    assert len(by_source) == 2 and min(by_source.values()) > 500, by_source
    for proc in (first, second):
        assert proc.stop() == 0


def test_kill_9_while_events_stream_in_loses_nothing(
    spawn: Callable[..., AggregatorProcess], setup: Setup, store: EventStore
) -> None:
    aggregator = spawn("a1").start()
    aggregator.wait_connected()
    events = random_events(10_000, rng=random.Random(12), spots=("north", "south", "east"))
    publisher = Publisher(setup.admin, "stream")
    streaming = threading.Thread(
        target=publisher.publish, args=(event_messages(events, setup.prefix),)
    )
    streaming.start()
    wait_for(lambda: store.count_events() >= 1500, 60, "the first events to be stored")
    aggregator.kill9()
    killed_at = store.count_events()
    aggregator.start()
    aggregator.wait_connected()
    streaming.join(timeout=120)
    publisher.close()
    wait_for(lambda: store.count_events() == 10_000, 60, "all 10,000 events after the restart")
    assert killed_at < 10_000, "the kill must happen while events are still arriving"
    assert aggregator.stop() == 0


def _bad_messages_for_the_broker(prefix: str, n_examples: int) -> list[BadMessage]:
    collected: list[BadMessage] = []

    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bad_messages(publishable=True), min_size=50, max_size=50))
    def collect(batch: list[BadMessage]) -> None:
        collected.extend(batch)

    collect()
    assert not [
        m for m in collected if not isinstance(validate(PREFIX, m.topic, m.payload), Rejected)
    ], "the generator made valid messages"
    return [BadMessage(m.kind, prefix + m.topic.removeprefix(PREFIX), m.payload) for m in collected]


def test_bad_messages_through_the_broker_are_dead_letters_and_ingest_goes_on(
    spawn: Callable[..., AggregatorProcess], setup: Setup, store: EventStore
) -> None:
    bad = _bad_messages_for_the_broker(setup.prefix, 20)
    aggregator = spawn("a1").start()
    aggregator.wait_connected()
    publisher = Publisher(setup.admin, "fuzzer")
    good = random_events(200, rng=random.Random(13))
    messages = [(m.topic, m.payload) for m in bad] + event_messages(good, setup.prefix)
    random.Random(14).shuffle(messages)
    publisher.publish(messages)
    wait_for(
        lambda: store.count_dead_letters() == len(bad) and store.count_events() == 200,
        60,
        f"{len(bad)} dead letters and 200 events",
    )
    assert aggregator.alive
    later = random_events(50, rng=random.Random(15))
    publisher.publish(event_messages(later, setup.prefix))
    publisher.close()
    wait_for(lambda: store.count_events() == 250, 30, "events published after the bad ones")
    reasons = store.dead_letter_reasons()
    assert sum(reasons.values()) == len(bad) >= 1000
    assert {"invalid", "identity_mismatch", "too_large", "bad_topic"} <= set(reasons), reasons
    assert aggregator.stop() == 0


def test_status_heartbeat_and_will_reach_the_fleet_table(
    spawn: Callable[..., AggregatorProcess], setup: Setup, store: EventStore
) -> None:
    aggregator = spawn("a1").start()
    aggregator.wait_connected()
    status_topic = setup.ns.topic(setup.ns.agents[0], "status")
    online = example_status()  # site-a/spot-1/agent-1, the namespace's first agent
    will = online.model_copy(update={"state": AgentState.OFFLINE, "stats": None})
    agent = Publisher(setup.agent, "agent-1", will=(status_topic, will.to_json()))
    agent.publish([(status_topic, online.to_json())], retain=True)
    agent.publish([(setup.ns.topic(setup.ns.agents[0], "heartbeat"), online.to_json())])
    wait_for(lambda: len(store.agents("site-a")) == 1, 30, "the agent to appear")
    assert store.agents("site-a")[0].state is AgentState.ONLINE
    agent.crash()
    wait_for(
        lambda: store.agents("site-a")[0].state is AgentState.OFFLINE,
        30,
        "the will to mark it offline",
    )
    assert aggregator.stop() == 0
    # A restarted aggregator receives the retained will again: a copy, which changes nothing.
    restarted = spawn("a2").start()
    restarted.wait_connected()
    assert restarted.stop() == 0
    (agent_row,) = store.agents("site-a")
    assert agent_row.state is AgentState.OFFLINE and agent_row.fps == 24.9
    assert store.count_dead_letters() == 0

"""Ingest when the services fail: a store outage, a broker restart, a refused login."""

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.store import EventStore
from footfall.contract.examples import random_events
from infra import devservices as ds
from tests.ingest_support import (
    AggregatorProcess,
    BrokerAccess,
    Publisher,
    aggregator_config,
    event_messages,
    wait_for,
)
from tests.services import MqttNamespace, PgDatabase, ServiceFactory

pytestmark = pytest.mark.services


@pytest.fixture
def cleanup() -> Iterator[list[AggregatorProcess]]:
    """Aggregator processes to stop when the test ends, whatever happened."""
    procs: list[AggregatorProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


def _access(broker: ds.Mosquitto, user: ds.BrokerUser) -> BrokerAccess:
    return BrokerAccess(broker.host, broker.tls_port, user.name, user.password, broker.ca_file)


def _aggregator(
    tmp_path: Path,
    broker: ds.Mosquitto,
    user: ds.BrokerUser,
    pg: ds.Postgres,
    database: str,
    *,
    prefix: str = "footfall/v1",
    protocol: str = "5",
    password: str | None = None,
) -> AggregatorProcess:
    config = aggregator_config(
        tmp_path / f"agg-{protocol}.toml",
        _access(broker, user),
        f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{database}",
        client_id=f"agg-{random.getrandbits(24):06x}",
        prefix=prefix,
    )
    config.write_text(config.read_text().replace("[mqtt]\n", f'[mqtt]\nprotocol = "{protocol}"\n'))
    env = {
        "FOOTFALL_AGGREGATOR__MQTT__PASSWORD": password or user.password,
        "FOOTFALL_AGGREGATOR__STORE__PASSWORD": pg.password,
    }
    return AggregatorProcess(config, tmp_path / f"agg-{protocol}.log", env)


def test_a_store_outage_holds_acknowledgements_and_loses_nothing(
    tmp_path: Path,
    mqtt_namespace: MqttNamespace,
    postgres_factory: ServiceFactory[ds.Postgres],
    cleanup: list[AggregatorProcess],
) -> None:
    ns = mqtt_namespace
    pg = postgres_factory()
    aggregator = _aggregator(tmp_path, ns.broker, ns.aggregator, pg, pg.database, prefix=ns.prefix)
    cleanup.append(aggregator.start())
    aggregator.wait_connected()
    store = EventStore.open(pg.url)
    publisher = Publisher(_access(ns.broker, ns.admin), "outage-pub")
    before, during = (
        random_events(1000, rng=random.Random(21)),
        random_events(3000, rng=random.Random(22)),
    )
    publisher.publish(event_messages(before, ns.prefix))
    wait_for(lambda: store.count_events() == 1000, 30, "the events before the outage")
    store.close()

    pg.stop()
    publisher.publish(event_messages(during, ns.prefix))  # the broker takes them meanwhile
    wait_for(lambda: "store unavailable" in aggregator.log_text(), 30, "the outage to be seen")
    pg.start()
    store = EventStore.open(pg.url)
    wait_for(lambda: store.count_events() == 4000, 60, "every event after the outage")
    publisher.close()
    store.close()
    assert aggregator.stop() == 0


def _queue_events_for_a_stopped_aggregator(
    tmp_path: Path,
    broker: ds.Mosquitto,
    db: PgDatabase,
    protocol: str,
    cleanup: list[AggregatorProcess],
) -> AggregatorProcess:
    aggregator = _aggregator(
        tmp_path, broker, broker.user("aggregator"), db.server, db.name, protocol=protocol
    )
    cleanup.append(aggregator)
    aggregator.start().wait_connected()
    assert aggregator.stop() == 0  # the session stays, with its subscriptions
    publisher = Publisher(_access(broker, broker.user("admin")), "queued-pub")
    publisher.publish(event_messages(random_events(500, rng=random.Random(23))))
    publisher.close()
    return aggregator


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_graceful_broker_restart_keeps_the_session_and_its_queue(
    tmp_path: Path,
    mosquitto_factory: ServiceFactory[ds.Mosquitto],
    pg_database: PgDatabase,
    cleanup: list[AggregatorProcess],
    protocol: str,
) -> None:
    broker = mosquitto_factory()
    aggregator = _queue_events_for_a_stopped_aggregator(
        tmp_path, broker, pg_database, protocol, cleanup
    )
    broker.restart()  # SIGTERM: Mosquitto writes its persistence file on the way out
    aggregator.start().wait_connected()
    store = EventStore.open(pg_database.url)
    wait_for(lambda: store.count_events() == 500, 30, "the events queued before the restart")
    store.close()
    assert aggregator.stop() == 0
    connects = [line for line in aggregator.log_text().splitlines() if "connected to" in line]
    assert ["new session" in c for c in connects] == [True, False]
    assert connects[1].endswith("session resumed")


def test_a_broker_crash_loses_what_it_queued_since_its_last_save(
    tmp_path: Path,
    mosquitto_factory: ServiceFactory[ds.Mosquitto],
    pg_database: PgDatabase,
    cleanup: list[AggregatorProcess],
) -> None:
    """The gap the README documents: Mosquitto persists sessions and queues only every
    ``autosave_interval``; a crash loses what came since, and the agents' outbox cannot resend it
    because the broker had acknowledged it. The aggregator says so and carries on."""
    broker = mosquitto_factory(autosave_interval=3600)  # no save between publish and crash
    aggregator = _queue_events_for_a_stopped_aggregator(tmp_path, broker, pg_database, "5", cleanup)
    broker.kill()
    broker.start()
    aggregator.start().wait_connected()
    publisher = Publisher(_access(broker, broker.user("admin")), "after-crash")
    publisher.publish(event_messages(random_events(1, rng=random.Random(24))))
    publisher.close()
    store = EventStore.open(pg_database.url)
    wait_for(lambda: store.count_events() >= 1, 30, "the event sent after the crash")
    time.sleep(1)
    assert store.count_events() == 1
    store.close()
    assert aggregator.stop() == 0
    assert "the broker no longer had our session" in aggregator.log_text()


def test_a_refused_login_is_a_clear_error_and_exit_1(
    tmp_path: Path,
    mqtt_namespace: MqttNamespace,
    pg_database: PgDatabase,
    cleanup: list[AggregatorProcess],
) -> None:
    ns = mqtt_namespace
    aggregator = _aggregator(
        tmp_path,
        ns.broker,
        ns.aggregator,
        pg_database.server,
        pg_database.name,
        prefix=ns.prefix,
        password="wrong-password",
    ).start()
    cleanup.append(aggregator)
    wait_for(lambda: not aggregator.alive, 30, "the aggregator to give up")
    assert aggregator.stop() == 1
    assert aggregator.log_text().strip().splitlines()[-1] == (
        f"error: the broker at 127.0.0.1:{ns.broker.tls_port} refused the connection: "
        "Not authorized"
    )
    assert "connected to" not in aggregator.log_text()


def test_concurrent_migrations_from_two_processes_apply_once(pg_database: PgDatabase) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            EventStore.open(pg_database.url).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

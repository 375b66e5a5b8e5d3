"""The metrics and health endpoints, scraped over real HTTP: the agent's (delivery wiring with a
fake broker, then with a broker that refuses it) and the aggregator's (the real `run` command in
a subprocess, against the real Mosquitto)."""

import random
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent import Delivery
from edge_agent.config import AgentConfig
from edge_agent.remote_config import RemoteConfigManager
from footfall.connections import BrokerSettings
from footfall.contract.examples import random_events
from footfall.mqtt_link import BrokerRefusedError
from infra import devservices as ds
from tests.fake_broker import FakeBroker
from tests.ingest_support import (
    AggregatorProcess,
    BrokerAccess,
    aggregator_config,
    event_messages,
    wait_for,
)
from tests.services import MqttNamespace


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of every sample on /metrics."""
    status, text = _get(port, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def _agent_config(tmp_path: Path, port: int) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "config_version": "c-1",
            "site": "site-a",
            "spot": "spot-1",
            "agent": "cam-1",
            "data_dir": tmp_path,
            "mqtt": BrokerSettings(host="fake", reconnect_min_seconds=0.1),
            "health": {"port": port},
        }
    )


def test_agent_endpoints(tmp_path: Path) -> None:
    (port,) = ds.free_ports(1)
    broker = FakeBroker()
    config = _agent_config(tmp_path, port)
    delivery = Delivery(config, links=broker.link)
    events = list(random_events(3, rng=random.Random(1), site="site-a"))
    with delivery:
        for event in events:
            delivery.sink.emit(event.model_copy(update={"agent": "cam-1", "crop": None}), None)
        wait_for(lambda: _samples(port).get("footfall_agent_events_sent_total") == 3, 10, "sent")
        samples = _samples(port)
        assert samples["footfall_agent_events_emitted_total"] == 3
        assert samples["footfall_agent_outbox_events"] == 0
        assert samples["footfall_agent_mqtt_connected"] == 1
        assert samples['footfall_agent_config_results_total{outcome="rejected"}'] == 0
        info = next(k for k in samples if k.startswith("footfall_agent_info{"))
        assert 'agent="cam-1"' in info and 'config_version="c-1"' in info
        for name in (
            "footfall_agent_frames_read_total",
            "footfall_agent_frames_dropped_total",
            "footfall_agent_frames_per_second",
            "footfall_agent_outbox_bytes",
            "footfall_agent_mqtt_publish_denied_total",
        ):
            assert name in samples
        assert _get(port, "/healthz") == (200, "ok\n")
        assert _get(port, "/readyz") == (200, "ready\n")
        assert _get(port, "/nope")[0] == 404
    # The endpoint goes away with the agent.
    assert not _port_answers(port)


def _port_answers(port: int) -> bool:
    try:
        _get(port, "/healthz")
    except OSError:
        return False
    return True


def test_agent_not_ready_while_the_broker_refuses_it(tmp_path: Path) -> None:
    (port,) = ds.free_ports(1)
    broker = FakeBroker(refuse=BrokerRefusedError("refused: Not authorized", 135, "Not authorized"))
    config = _agent_config(tmp_path, port)
    with Delivery(config, links=broker.link, remote=RemoteConfigManager(config)):
        wait_for(lambda: _get(port, "/readyz")[0] == 503, 10, "not ready")
        assert _get(port, "/readyz") == (503, "not ready: MQTT refused: refused: Not authorized\n")
        assert _get(port, "/healthz")[0] == 200
        samples = _samples(port)
        assert samples["footfall_agent_mqtt_connected"] == 0
        assert samples["footfall_agent_mqtt_connect_failures_total"] >= 1


def test_aggregator_endpoints(mqtt_namespace: MqttNamespace, tmp_path: Path) -> None:
    ns = mqtt_namespace
    (port,) = ds.free_ports(1)
    access = BrokerAccess(
        ns.broker.host, ns.broker.tls_port, ns.aggregator.name, None, ns.broker.ca_file
    )
    config = aggregator_config(
        tmp_path / "aggregator.toml",
        access,
        f"sqlite:///{tmp_path / 'store.db'}",
        client_id="agg-health",
        prefix=ns.prefix,
    )
    with config.open("a") as fh:
        fh.write(f"[health]\nport = {port}\n")
    proc = AggregatorProcess(
        config,
        tmp_path / "aggregator.log",
        {"FOOTFALL_AGGREGATOR__MQTT__PASSWORD": ns.aggregator.password},
    ).start()
    try:
        proc.wait_connected()
        wait_for(lambda: _port_answers(port) and _get(port, "/readyz")[0] == 200, 20, "ready")
        agent = ns.agents[0]
        events = [
            e.model_copy(update={"agent": agent.agent})
            for e in random_events(2, rng=random.Random(2), site="site-a", spots=("spot-1",))
        ]
        with ns.client(agent) as client:
            assert not client.connect().is_failure
            for topic, payload in event_messages(events, ns.prefix):
                assert not client.publish(topic, payload).is_failure
            assert not client.publish(ns.topic(agent, "events"), b"{bad").is_failure
        wait_for(
            lambda: _samples(port).get("footfall_aggregator_events_stored_total") == 2,
            20,
            "two events stored",
        )
        samples = _samples(port)
        assert samples['footfall_aggregator_dead_letters_total{reason="invalid"}'] == 1
        assert samples["footfall_aggregator_mqtt_connected"] == 1
        assert samples["footfall_aggregator_acks_total"] == 3
        assert 'footfall_aggregator_agents{health="online"}' in samples
        assert _get(port, "/healthz") == (200, "ok\n")
    finally:
        assert proc.stop() == 0, proc.log_text()

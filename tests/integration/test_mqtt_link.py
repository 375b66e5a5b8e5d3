"""The agent's MQTT link against the real Mosquitto (TLS, passwords, ACL): a good connection in
both protocol versions, one clear error each for a wrong CA and a wrong password, and an ACL
denial that is reported and loses nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.agent import Delivery
from edge_agent.cli import app
from edge_agent.config import AgentConfig
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.heartbeat import StatusBuilder
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.sender import EventSender, LinkState
from footfall.connections import BrokerSettings, MqttProtocol
from footfall.contract import AgentState
from footfall.contract.topics import AgentAddress
from footfall.mqtt_link import (
    BrokerRefusedError,
    BrokerUnreachableError,
    TlsError,
    check_broker,
    paho_link_factory,
)
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.services import MqttNamespace

pytestmark = pytest.mark.services


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def settings_for(
    ns: MqttNamespace,
    user: ds.BrokerUser,
    *,
    password: str | None = None,
    ca_file: Path | None = None,
    protocol: MqttProtocol = MqttProtocol.V5,
) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {
            "host": ns.broker.host,
            "port": ns.broker.tls_port,
            "protocol": protocol,
            "tls": True,
            "ca_file": ca_file or ns.broker.ca_file,
            "username": user.name,
            "password": password or user.password,
            "topic_prefix": ns.prefix,
            "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.2,
        }
    )


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the broker's certificate."""
    directory = tmp_path_factory.mktemp("other-ca")
    ds.make_test_ca(directory)
    return directory / "ca.crt"


@pytest.mark.parametrize("protocol", [MqttProtocol.V5, MqttProtocol.V311])
def test_connects_over_tls_as_the_agent(
    mqtt_namespace: MqttNamespace, protocol: MqttProtocol
) -> None:
    ns = mqtt_namespace
    user = ns.agents[0]
    line = check_broker(settings_for(ns, user, protocol=protocol), "agent-1")
    port = ns.broker.tls_port
    if protocol is MqttProtocol.V5:
        assert line == (
            f"connected to 127.0.0.1:{port} as {user.name!r} (client id 'agent-1', MQTT 5, TLS, "
            "receive maximum 20)"
        )
    else:
        assert line == (
            f"connected to 127.0.0.1:{port} as {user.name!r} (client id 'agent-1', MQTT 3.1.1, TLS)"
        )


def test_wrong_ca_is_one_clear_tls_error(mqtt_namespace: MqttNamespace, other_ca: Path) -> None:
    ns = mqtt_namespace
    with pytest.raises(TlsError) as err:
        check_broker(settings_for(ns, ns.agents[0], ca_file=other_ca), "agent-1")
    assert str(err.value) == (
        f"TLS: the certificate of the broker at 127.0.0.1:{ns.broker.tls_port} is not trusted "
        f"(self-signed certificate in certificate chain); check mqtt.ca_file = {other_ca}"
    )


def test_wrong_password_is_one_clear_refusal(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    user = ns.agents[0]
    with pytest.raises(BrokerRefusedError) as err:
        check_broker(settings_for(ns, user, password="not-the-password"), "agent-1")
    assert err.value.reason_code == 135
    assert str(err.value) == (
        f"the broker at 127.0.0.1:{ns.broker.tls_port} refused the connection: Not authorized "
        f"(reason code 135); check mqtt.username ({user.name!r}) and the password, and that this "
        "user may connect"
    )


def test_plain_port_with_tls_is_not_mistaken_for_a_refusal(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    settings = settings_for(ns, ns.agents[0]).model_copy(update={"port": ns.broker.port})
    with pytest.raises(BrokerUnreachableError, match="is this a TLS port"):
        check_broker(settings, "agent-1")


def _config_file(tmp_path: Path, ns: MqttNamespace, user: ds.BrokerUser, ca: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
site = "site-a"
spot = "spot-1"
agent = "agent-1"
data_dir = "{tmp_path / "data"}"

[delivery]
# The watcher is a bare subscriber, no aggregator: the PUBACK is the confirmation.
confirm = "broker"

[mqtt]
host = "127.0.0.1"
port = {ns.broker.tls_port}
ca_file = "{ca}"
username = "{user.name}"
topic_prefix = "{ns.prefix}"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("problem", ["ca", "password"])
def test_check_broker_command_prints_one_line(
    mqtt_namespace: MqttNamespace, other_ca: Path, tmp_path: Path, problem: str
) -> None:
    ns = mqtt_namespace
    user = ns.agents[0]
    ca = other_ca if problem == "ca" else ns.broker.ca_file
    password = user.password if problem == "ca" else "wrong"
    config = _config_file(tmp_path, ns, user, ca)
    result = CliRunner().invoke(
        app,
        ["check-broker", "--config", str(config)],
        env={"FOOTFALL_AGENT__MQTT__PASSWORD": password},
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    where = f"127.0.0.1:{ns.broker.tls_port}"
    expected = (
        f"error: TLS: the certificate of the broker at {where} is not trusted"
        if problem == "ca"
        else f"error: the broker at {where} refused the connection: Not authorized (reason code 135)"
    )
    assert lines[0].startswith(expected)

    good = CliRunner().invoke(
        app,
        ["check-broker", "--config", str(_config_file(tmp_path, ns, user, ns.broker.ca_file))],
        env={"FOOTFALL_AGENT__MQTT__PASSWORD": user.password},
    )
    assert good.exit_code == 0 and good.stdout.startswith(f"connected to {where}")


@pytest.mark.parametrize("problem", ["ca", "password"])
def test_sender_reports_a_refusal_as_such_and_never_as_connected(
    mqtt_namespace: MqttNamespace,
    other_ca: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    ns = mqtt_namespace
    user = ns.agents[0]
    settings = (
        settings_for(ns, user, ca_file=other_ca)
        if problem == "ca"
        else settings_for(ns, user, password="wrong")
    )
    address = AgentAddress("site-a", "spot-1", "agent-1")
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.put_many(list(synthetic_events(3, seed=1, address=address)))
        sender = EventSender(
            outbox,
            paho_link_factory(settings, "agent-1"),
            address=address,
            topic_prefix=ns.prefix,
            backoff=Backoff(0.05, 0.2),
            status=StatusBuilder(address, outbox, config_version="1"),
        )
        caplog.set_level(logging.INFO, logger="edge_agent")
        sender.start()
        wait_for(lambda: sender.stats().connect_failures >= 3, "three attempts")
        stats = sender.stats()
        assert sender.stop(0.0)
        assert outbox.depth() == 3
    expected = LinkState.TLS_ERROR if problem == "ca" else LinkState.REFUSED
    assert stats.state is expected and stats.connects == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [stats.last_error]
    assert not any("connected" in r.getMessage() for r in caplog.records if r.levelno < 40)


def test_acl_denial_under_another_agents_topic_is_reported_and_nothing_is_lost(
    mqtt_namespace: MqttNamespace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Agent 1's credentials, configured as agent 2: the broker refuses every publish under
    agent 2's topics. The agent must say so and keep the events."""
    ns = mqtt_namespace
    me = ns.agents[0]
    config = AgentConfig.model_validate(
        {
            "site": "site-a",
            "spot": "spot-2",
            "agent": "agent-2",
            "data_dir": tmp_path / "data",
            "delivery": {"heartbeat_seconds": 0.5},
            "mqtt": settings_for(ns, me).model_dump(),
        }
    )
    produced = list(synthetic_events(5, seed=2, address=config.address))
    caplog.set_level(logging.INFO, logger="edge_agent")
    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(ns.all_topics)
        delivery = Delivery(config)
        delivery.start()
        try:
            delivery.outbox.put_many(produced)
            assert delivery.sender is not None
            sender = delivery.sender
            wait_for(lambda: sender.stats().publish_denied >= 5, "the broker's denials")
            stats = sender.stats()
            assert stats.state is LinkState.CONNECTED
            assert stats.last_error is not None
            topic = f"{ns.prefix}/site-a/spot-2/agent-2/events"
            assert stats.last_error.startswith(
                f"the broker denied a publish to {topic}: Not authorized (reason code 135)"
            )
            assert delivery.outbox.depth() == 5  # not one event deleted
            # ... and the heartbeat would carry it, where the ACL lets it through.
            beat = delivery.status.build(AgentState.ONLINE, with_stats=True)
            assert beat.last_error == stats.last_error
        finally:
            report = delivery.stop(0.0)
        assert report.events_left == 5
        # Nothing of agent 2's topics reached the aggregator: events, status, heartbeat, will.
        assert watcher.next_message(0.5) is None
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"the broker denied a publish to {topic}: Not authorized" in "\n".join(logged)


def test_deliver_command_empties_an_outbox_left_behind(
    mqtt_namespace: MqttNamespace, tmp_path: Path
) -> None:
    """An outbox left by a stopped agent is shipped by ``deliver --until-empty``, in order."""
    ns = mqtt_namespace
    user = ns.agents[0]
    config = _config_file(tmp_path, ns, user, ns.broker.ca_file)
    address = AgentAddress("site-a", "spot-1", "agent-1")
    items = list(synthetic_events(25, seed=4, address=address))
    with Outbox(tmp_path / "data" / "outbox.db") as box:
        box.put_many(items)
    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(f"{ns.prefix}/site-a/spot-1/agent-1/events")
        result = CliRunner().invoke(
            app,
            ["deliver", "--config", str(config), "--until-empty"],
            env={"FOOTFALL_AGENT__MQTT__PASSWORD": user.password},
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("0 event(s) and 0 crop(s) left in the outbox after ")
        got = [watcher.next_message(5) for _ in items]
    assert [json.loads(m.payload)["event_id"] for m in got if m is not None] == [
        str(e.event_id) for e, _ in items
    ]

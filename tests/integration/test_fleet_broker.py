"""The deployment's Mosquitto configuration and the fleet registry, against a real broker.

The broker is started from ``infra/mosquitto/mosquitto.conf`` itself (only paths, the port and
the log destination replaced, see ``ConfiguredMosquitto``) with the password and ACL files the
registry generates; accounts are made with the real ``footfall-aggregator fleet`` commands.
"""

import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from edge_agent.config import load_agent_config
from infra import devservices as ds
from infra.devservices.connack import CONNACK_ACCEPTED, CONNACK_NOT_AUTHORIZED, mqtt_connack
from tests.services import MqttTestClient, ServiceFactory

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "mosquitto" / "mosquitto.conf"
PREFIX = "footfall/v1"
NOT_AUTHORIZED = 135

runner = CliRunner()


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: it is 0700, and the broker reads the registry's files after
    # dropping to its own user.
    path = Path(tempfile.mkdtemp(prefix="fleet-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


class Fleet:
    """A registry, a broker started from the deployment config on its files, and helpers."""

    def __init__(self, root: Path, broker: ds.ConfiguredMosquitto) -> None:
        self.root = root
        self.registry = root / "registry"
        self.broker = broker

    def common(self) -> list[str]:
        return [
            "--registry",
            str(self.registry),
            "--broker-user",
            "mosquitto",
            "--reload-pid-file",
            str(self.broker.broker_pid_file),
        ]

    def provision(self, site: str, spot: str, agent: str) -> tuple[Path, str]:
        out = self.root / f"bundle-{agent}"
        output = _cli(
            "fleet",
            "provision",
            "--site",
            site,
            "--spot",
            spot,
            "--agent",
            agent,
            "--broker-host",
            "127.0.0.1",
            "--broker-port",
            str(self.broker.tls_port),
            "--ca",
            str(self.broker.ca_file),
            "--out",
            str(out),
            *self.common(),
        )
        password = (out / "mqtt.password").read_text().strip()
        assert password not in output
        assert self.wait_connack(agent, password, CONNACK_ACCEPTED) == CONNACK_ACCEPTED
        return out, password

    def add_user(self, role: str, name: str) -> str:
        out = self.root / f"bundle-{name}"
        _cli(
            "fleet",
            "add-user",
            "--role",
            role,
            "--user",
            name,
            "--broker-host",
            "127.0.0.1",
            "--ca",
            str(self.broker.ca_file),
            "--out",
            str(out),
            *self.common(),
        )
        password = (out / "mqtt.password").read_text().strip()
        assert self.wait_connack(name, password, CONNACK_ACCEPTED) == CONNACK_ACCEPTED
        return password

    def client(self, user: str, password: str) -> MqttTestClient:
        return MqttTestClient(
            self.broker.host,
            self.broker.tls_port,
            user,
            password,
            ca_file=self.broker.ca_file,
        )

    def connack(self, user: str | None, password: str | None) -> int:
        return mqtt_connack(
            self.broker.host,
            self.broker.tls_port,
            user,
            password,
            ssl_context=self.broker.ssl_context(),
        )

    def wait_connack(self, user: str, password: str, expected: int) -> int:
        # A SIGHUP is acknowledged by nothing but the new files taking effect.
        deadline = time.monotonic() + 10
        code = self.connack(user, password)
        while code != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            code = self.connack(user, password)
        return code


@pytest.fixture
def fleet(workdir: Path) -> Iterator[Fleet]:
    registry = workdir / "registry"
    # The registry must exist (with its generated files) before the broker reads them.
    _cli("fleet", "render", "--registry", str(registry), "--broker-user", "mosquitto")
    factory = ServiceFactory(ds.ConfiguredMosquitto)
    broker = factory(
        template=TEMPLATE,
        password_file=registry / "mosquitto" / "passwd",
        acl_file=registry / "mosquitto" / "acl",
    )
    try:
        yield Fleet(workdir, broker)
    finally:
        factory.close_all()


def test_hardened_config_keeps_its_settings_and_refuses_anonymous_clients(fleet: Fleet) -> None:
    rendered = "\n".join(fleet.broker.rendered())
    for line in (
        "allow_anonymous false",
        "per_listener_settings false",
        "persistence true",
        "tls_version tlsv1.2",
        "max_queued_messages 300000",
    ):
        assert line in rendered.splitlines()
    assert fleet.connack(None, None) == CONNACK_NOT_AUTHORIZED
    # TLS only: a plain MQTT CONNECT on the listener gets no CONNACK.
    with pytest.raises(OSError):
        mqtt_connack(fleet.broker.host, fleet.broker.tls_port, None, None, timeout=2)


def test_provisioned_agent_publishes_only_under_its_own_topics(fleet: Fleet) -> None:
    bundle, password = fleet.provision("site-a", "spot-1", "cam-1")
    _, other_password = fleet.provision("site-a", "spot-2", "cam-2")
    aggregator_password = fleet.add_user("aggregator", "aggregator-1")
    operator_password = fleet.add_user("operator", "ops")

    # The bundle: a valid agent configuration, the secret only in its 0600 file.
    config = load_agent_config(bundle / "agent.toml")
    assert (config.site, config.spot, config.agent) == ("site-a", "spot-1", "cam-1")
    assert config.mqtt is not None and config.mqtt.username == "cam-1"
    assert stat.S_IMODE((bundle / "mqtt.password").stat().st_mode) == 0o600
    for generated in (fleet.registry / "mosquitto").iterdir():
        assert password not in generated.read_text()
    for record in (fleet.registry / "accounts").iterdir():
        assert password not in record.read_text()
        assert stat.S_IMODE(record.stat().st_mode) == 0o600

    own = f"{PREFIX}/site-a/spot-1/cam-1"
    other = f"{PREFIX}/site-a/spot-2/cam-2"
    with (
        fleet.client("aggregator-1", aggregator_password) as aggregator,
        fleet.client("cam-1", password) as agent,
        fleet.client("ops", operator_password) as operator,
    ):
        assert not aggregator.connect().is_failure
        assert not agent.connect().is_failure
        assert not operator.connect().is_failure
        aggregator.subscribe(f"{PREFIX}/#")
        agent.subscribe(f"{PREFIX}/#")  # granted, but the ACL filters what is delivered

        for channel in ("events", "status", "heartbeat", "config-result"):
            assert not agent.publish(f"{own}/{channel}", b"{}").is_failure
            message = aggregator.next_message()
            assert message is not None and message.topic == f"{own}/{channel}"

        # Writing as another agent, or into another agent's config, is refused (MQTT 5 tells).
        for topic in (f"{other}/events", f"{other}/config", f"{PREFIX}/site-a/spot-1/x/events"):
            assert agent.publish(topic, b"{}").value == NOT_AUTHORIZED
        # The aggregator writes nothing.
        assert aggregator.publish(f"{own}/config", b"{}").value == NOT_AUTHORIZED

        # Configs: the operator writes them, each agent reads only its own.
        assert not operator.publish(f"{other}/config", b'{"v": 2}').is_failure
        assert not operator.publish(f"{own}/config", b'{"v": 1}').is_failure
        received = agent.next_message()
        assert received is not None and received.topic == f"{own}/config"
        assert agent.next_message(timeout=0.5) is None  # not cam-2's config, not any event
        assert operator.publish(f"{own}/events", b"{}").value == NOT_AUTHORIZED
        # Its own config it may write too: how it restores the last good one after a rejection.
        assert not agent.publish(f"{own}/config", b'{"v": 0}').is_failure
        received = agent.next_message()
        assert received is not None and received.payload == b'{"v": 0}'

    with fleet.client("cam-2", other_password) as second:
        assert not second.connect().is_failure


def test_revoked_agent_is_refused_and_loses_its_connection(fleet: Fleet) -> None:
    _, password = fleet.provision("site-a", "spot-1", "cam-1")
    with fleet.client("cam-1", password) as live:
        assert not live.connect().is_failure
        output = _cli("fleet", "revoke", "--agent", "cam-1", *fleet.common())
        assert "broker reloaded" in output
        assert fleet.wait_connack("cam-1", password, CONNACK_NOT_AUTHORIZED) == (
            CONNACK_NOT_AUTHORIZED
        )
        # Measured on 2.0.11: the reload also ends the revoked account's open connection.
        deadline = time.monotonic() + 10
        while live.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not live.client.is_connected()
    listing = _cli("fleet", "list-provisioned", "--registry", str(fleet.registry))
    assert "revoked" in listing


def test_rotation_replaces_the_password(fleet: Fleet) -> None:
    _, old = fleet.provision("site-a", "spot-1", "cam-1")
    out = fleet.root / "rotated"
    output = _cli(
        "fleet",
        "rotate",
        "--agent",
        "cam-1",
        "--broker-host",
        "127.0.0.1",
        "--ca",
        str(fleet.broker.ca_file),
        "--out",
        str(out),
        *fleet.common(),
    )
    new = (out / "mqtt.password").read_text().strip()
    assert new != old and new not in output
    assert fleet.wait_connack("cam-1", new, CONNACK_ACCEPTED) == CONNACK_ACCEPTED
    assert fleet.connack("cam-1", old) == CONNACK_NOT_AUTHORIZED

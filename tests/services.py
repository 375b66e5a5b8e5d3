"""pytest plugin: real Mosquitto, SeaweedFS S3 and PostgreSQL for integration tests.

Enable with ``pytest_plugins = ["tests.services"]`` in ``tests/conftest.py``.

Session fixtures start a service on first use and stop it at the end of the run; a test that does
not ask for one does not start it. Function fixtures give each test its own namespace on the
shared services (topic prefix and broker users, bucket, database), so tests do not see each other.
Tests that stop, kill or restart a service must use the ``*_factory`` fixtures to get their own
instance; the shared ones must stay up.

When a service's programs are not installed the test is skipped, or fails if ``FOOTFALL_STRICT=1``
(CI sets it, so a broken CI image cannot pass by skipping everything). ``FOOTFALL_KEEP_SERVICES=1``
keeps the state directories (configs, logs, data) for a post-mortem.

Every test using these fixtures gets the ``services`` marker automatically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import pytest

from footfall.connections import BrokerSettings
from infra import devservices as ds

if TYPE_CHECKING:
    from paho.mqtt.enums import MQTTProtocolVersion

_log = logging.getLogger(__name__)

STRICT_ENV = "FOOTFALL_STRICT"
KEEP_ENV = "FOOTFALL_KEEP_SERVICES"

S = TypeVar("S", bound=ds.Service)

_SERVICE_FIXTURES = frozenset(
    {
        "mosquitto",
        "s3_server",
        "postgres",
        "mqtt_namespace",
        "mqtt_topic_prefix",
        "s3_bucket",
        "pg_database",
        "mosquitto_factory",
        "s3_factory",
        "postgres_factory",
    }
)


def _keep() -> bool:
    return os.environ.get(KEEP_ENV) == "1"


def strict() -> bool:
    """Same rule as tests/conftest.py: any value but empty or "0" forbids skipping."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``FOOTFALL_STRICT`` is set."""
    if strict():
        pytest.fail(
            f"{reason}\n({STRICT_ENV}=1: a missing service fails instead of skipping)",
            pytrace=False,
        )
    pytest.skip(reason)


def _build(make: Callable[[], S]) -> S:
    """Construct a service; a missing program becomes a skip (or a strict failure)."""
    try:
        return make()
    except ds.MissingBinaryError as exc:
        unavailable(str(exc))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if _SERVICE_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.services)


# --------------------------------------------------------------------------------------------
# MQTT client helper


class MqttTestClient:
    """A paho-mqtt 2.x client (MQTT 5 by default) whose calls wait for the broker's answer.

    Messages received on any subscription go to :attr:`messages`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host, self.port = host, port
        self.protocol = mqtt.MQTTv5 if protocol is None else protocol
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{secrets.token_hex(6)}",
            protocol=self.protocol,
        )
        self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._connack: Any = None
        self._acks: dict[int, Any] = {}
        self._ack_cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # paho calls these from its network thread.
    def _on_connect(self, client: Any, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        self._connack = reason_code
        if reason_code.is_failure:
            # Otherwise paho's loop thread sleeps in its reconnect back-off, and loop_stop()
            # waits for that.
            client.disconnect()
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        self.messages.put(message)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        with self._ack_cond:
            self._acks[mid] = reason_code
            self._ack_cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reason_codes: Any, _p: Any) -> None:
        with self._ack_cond:
            self._acks[mid] = list(reason_codes)
            self._ack_cond.notify_all()

    def _wait_ack(self, mid: int, timeout: float) -> Any:
        with self._ack_cond:
            if not self._ack_cond.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no acknowledgement for message id {mid} in {timeout}s")
            return self._acks.pop(mid)

    def connect(self, *, timeout: float = 5.0, clean_start: bool = True) -> Any:
        """Connect and return the CONNACK reason code (a paho ``ReasonCode``); on a refusal
        the client is stopped so paho does not keep retrying."""
        import paho.mqtt.client as mqtt

        self._connected.clear()
        kwargs: dict[str, Any] = {"keepalive": 30}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = clean_start
        self.client.connect(self.host, self.port, **kwargs)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port} in {timeout}s")
        if self._connack.is_failure:
            self.close()
        return self._connack

    def subscribe(self, topic: str, qos: int = 1, *, timeout: float = 5.0) -> list[Any]:
        """Subscribe and return the SUBACK reason codes."""
        result, mid = self.client.subscribe(topic, qos)
        if result != 0 or mid is None:
            raise ConnectionError(f"subscribe({topic!r}) failed with {result}")
        codes: list[Any] = self._wait_ack(mid, timeout)
        return codes

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        *,
        retain: bool = False,
        timeout: float = 5.0,
    ) -> Any:
        """Publish and, for QoS > 0, return the PUBACK/PUBCOMP reason code (MQTT 5 tells
        "Not authorized" here; 3.1.1 acknowledges a denied publish as if it were fine)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            raise ConnectionError(f"publish({topic!r}) failed with {info.rc}")
        return self._wait_ack(info.mid, timeout)

    def next_message(self, timeout: float = 5.0) -> Any:
        """The next received message, or None after ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttTestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mqtt_client(
    broker: ds.Mosquitto, user: ds.BrokerUser, *, tls: bool = True, **kwargs: Any
) -> MqttTestClient:
    """A not yet connected :class:`MqttTestClient` for ``user`` on ``broker`` (TLS port by
    default, trusting the broker's throwaway CA)."""
    if tls:
        return MqttTestClient(
            broker.host, broker.tls_port, user.name, user.password, ca_file=broker.ca_file, **kwargs
        )
    return MqttTestClient(broker.host, broker.port, user.name, user.password, **kwargs)


# --------------------------------------------------------------------------------------------
# Per-test namespaces


@dataclass(frozen=True)
class MqttNamespace:
    """A topic prefix of its own on the shared broker, with users whose ACL is scoped to it.

    ``agents`` are ``site-a/spot-1/agent-1`` and ``site-a/spot-2/agent-2`` under ``prefix``;
    ``aggregator`` reads ``<prefix>/#``; ``admin`` is the broker's admin (everything).
    """

    broker: ds.Mosquitto
    prefix: str
    aggregator: ds.BrokerUser
    admin: ds.BrokerUser
    agents: tuple[ds.BrokerUser, ...]

    def topic(self, agent: ds.BrokerUser, channel: str) -> str:
        return agent.agent_topic(channel, self.prefix)

    @property
    def all_topics(self) -> str:
        return f"{self.prefix}/#"

    def client(self, user: ds.BrokerUser, *, tls: bool = True, **kwargs: Any) -> MqttTestClient:
        return mqtt_client(self.broker, user, tls=tls, **kwargs)

    def broker_settings(self, user: ds.BrokerUser) -> BrokerSettings:
        """A program's ``[mqtt]`` section for ``user`` over TLS, reconnecting within a second
        (a test waits for reconnects, not a field device)."""
        return BrokerSettings.model_validate(
            {
                "host": self.broker.host,
                "port": self.broker.tls_port,
                "ca_file": self.broker.ca_file,
                "username": user.name,
                "password": user.password,
                "topic_prefix": self.prefix,
                "reconnect_min_seconds": 0.2,
                "reconnect_max_seconds": 1,
            }
        )


@dataclass(frozen=True)
class S3Bucket:
    """A fresh, empty bucket on the shared S3 server; ``client`` is a boto3 client with the
    admin keys."""

    name: str
    server: ds.S3Server
    client: Any

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    @property
    def region(self) -> str:
        return self.server.region


@dataclass(frozen=True)
class PgDatabase:
    """A fresh, empty database on the shared cluster, owned by the cluster's app user."""

    name: str
    server: ds.Postgres

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.name)

    @property
    def url(self) -> str:
        """SQLAlchemy URL with the psycopg 3 driver."""
        return self.server.url_for(self.name)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def user(self) -> str:
        return self.server.user

    @property
    def password(self) -> str:
        return self.server.password


@dataclass
class ServiceFactory(Generic[S]):
    """Makes and starts private service instances; all are closed when the test ends."""

    make: Callable[..., S]
    created: list[S] = field(default_factory=list)

    def __call__(self, *, start: bool = True, **kwargs: Any) -> S:
        kwargs.setdefault("keep", _keep())
        service = _build(lambda: self.make(**kwargs))
        self.created.append(service)
        if start:
            service.start()
        return service

    def close_all(self) -> None:
        for service in reversed(self.created):
            try:
                service.close()
            except Exception:
                _log.exception("closing %r failed", service)
        self.created.clear()


def _unique(prefix: str, sep: str = "-") -> str:
    return f"{prefix}{sep}{secrets.token_hex(5)}"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[ds.Mosquitto]:
    """The shared broker (plain + TLS listener, default users, ACL on ``footfall/v1``)."""
    broker = _build(lambda: ds.Mosquitto(keep=_keep()))
    with broker:
        yield broker


@pytest.fixture(scope="session")
def s3_server() -> Iterator[ds.S3Server]:
    """The shared SeaweedFS S3 server (admin key pair only)."""
    server = _build(lambda: ds.S3Server(keep=_keep()))
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[ds.Postgres]:
    """The shared PostgreSQL cluster (app user and database ``footfall``)."""
    server = _build(lambda: ds.Postgres(keep=_keep()))
    with server:
        yield server


@pytest.fixture
def mqtt_namespace(mosquitto: ds.Mosquitto) -> Iterator[MqttNamespace]:
    """A unique topic prefix (``t-<hex>/footfall/v1``) with its own aggregator and two agents."""
    mosquitto.start()  # no-op unless an earlier test wrongly stopped the shared broker
    tag = secrets.token_hex(5)
    prefix = f"t-{tag}/footfall/v1"
    aggregator = ds.BrokerUser(
        f"aggregator-{tag}", secrets.token_hex(12), ds.Role.AGGREGATOR, topic_prefix=prefix
    )
    agents = tuple(
        ds.BrokerUser(
            f"agent-{n}-{tag}",
            secrets.token_hex(12),
            ds.Role.AGENT,
            "site-a",
            f"spot-{n}",
            f"agent-{n}",
            topic_prefix=prefix,
        )
        for n in (1, 2)
    )
    mosquitto.add_users([aggregator, *agents])
    admin = mosquitto.users_with_role(ds.Role.ADMIN)[0]
    yield MqttNamespace(mosquitto, prefix, aggregator, admin, agents)
    with contextlib.suppress(ds.ServiceError):
        mosquitto.remove_users([aggregator.name, *(a.name for a in agents)])


@pytest.fixture
def mqtt_topic_prefix(mqtt_namespace: MqttNamespace) -> str:
    """Just the unique prefix of :func:`mqtt_namespace`."""
    return mqtt_namespace.prefix


@pytest.fixture
def s3_bucket(s3_server: ds.S3Server) -> Iterator[S3Bucket]:
    """A fresh empty bucket, emptied and deleted after the test."""
    s3_server.start()
    client = s3_server.client()
    name = _unique("t")
    client.create_bucket(Bucket=name)
    yield S3Bucket(name, s3_server, client)
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)
    except Exception as exc:
        warnings.warn(f"could not delete test bucket {name}: {exc}", stacklevel=1)


@pytest.fixture
def pg_database(postgres: ds.Postgres) -> Iterator[PgDatabase]:
    """A fresh empty database owned by the app user, dropped (forcibly) after the test."""
    postgres.start()
    name = _unique("t", "_")
    postgres.create_database(name)
    yield PgDatabase(name, postgres)
    try:
        postgres.drop_database(name)
    except Exception as exc:
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


@pytest.fixture
def mosquitto_factory() -> Iterator[ServiceFactory[ds.Mosquitto]]:
    """``mosquitto_factory(**Mosquitto kwargs)`` -> a started private broker to stop/kill/restart."""
    factory = ServiceFactory(ds.Mosquitto)
    yield factory
    factory.close_all()


@pytest.fixture
def s3_factory() -> Iterator[ServiceFactory[ds.S3Server]]:
    """``s3_factory(**S3Server kwargs)`` -> a started private S3 server to stop/kill/restart."""
    factory = ServiceFactory(ds.S3Server)
    yield factory
    factory.close_all()


@pytest.fixture
def postgres_factory() -> Iterator[ServiceFactory[ds.Postgres]]:
    """``postgres_factory(**Postgres kwargs)`` -> a started private cluster."""
    factory = ServiceFactory(ds.Postgres)
    yield factory
    factory.close_all()

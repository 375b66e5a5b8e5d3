"""Smoke tests of the real services that infra/devservices starts.

They pin down the behaviour the rest of the suite relies on: TLS + credentials + ACL on Mosquitto
2.0.11 (including its exact refusal codes), signature checking on SeaweedFS S3, a plain round trip
on PostgreSQL, restarts that keep state, and the `up`/`down` CLI.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from infra import devservices as ds
from infra.devservices import common
from tests.services import (
    MqttNamespace,
    PgDatabase,
    S3Bucket,
    ServiceFactory,
    mqtt_client,
    unavailable,
)

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]

# MQTT 5 reason codes as Mosquitto 2.0.11 sends them.
NOT_AUTHORIZED = 135


def _drain(client: Any, timeout: float) -> list[Any]:
    out = []
    while (msg := client.next_message(timeout)) is not None:
        out.append(msg)
    return out


# --------------------------------------------------------------------------------------------
# Mosquitto


def test_tls_qos1_publish_reaches_aggregator(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    agent = ns.agents[0]
    with ns.client(ns.aggregator) as sub, ns.client(agent) as pub:
        assert not sub.connect().is_failure
        assert not pub.connect().is_failure
        assert [rc.value for rc in sub.subscribe(ns.all_topics, qos=1)] == [1]

        topic = ns.topic(agent, "events")
        assert pub.publish(topic, b'{"n": 1}', qos=1) == "Success"

        msg = sub.next_message(5)
        assert msg is not None, "QoS 1 message never arrived"
        assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"n": 1}', 1)


def test_acl_refuses_publish_under_another_agent(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    me, other = ns.agents
    with ns.client(ns.aggregator) as sub, ns.client(me) as pub:
        sub.connect()
        pub.connect()
        sub.subscribe(ns.all_topics)

        denied = pub.publish(ns.topic(other, "events"), b"forged", qos=1)
        assert denied == "Not authorized"
        assert denied.value == NOT_AUTHORIZED
        # Nor another agent's config (its own it may: to restore it after a rejection).
        assert pub.publish(ns.topic(other, "config"), b"{}", qos=1) == "Not authorized"
        # Same publisher, same connection: once this one arrives, the broker has long since
        # decided about the forged one, so there is no need to wait a fixed time for nothing.
        assert pub.publish(ns.topic(me, "status"), b"online", qos=1) == "Success"

        first = sub.next_message(5)
        assert first is not None
        assert (first.topic, first.payload) == (ns.topic(me, "status"), b"online")
        assert _drain(sub, 0.2) == []


def test_agent_reads_only_its_own_config(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    me, other = ns.agents
    with ns.client(ns.admin) as operator, ns.client(me) as agent:
        operator.connect()
        agent.connect()
        # Mosquitto 2.0.11 grants any subscription and applies the read ACL on delivery.
        agent.subscribe(ns.topic(other, "config"))
        agent.subscribe(ns.topic(me, "config"))
        assert operator.publish(ns.topic(other, "config"), b"theirs", qos=1) == "Success"
        assert operator.publish(ns.topic(me, "config"), b"mine", qos=1) == "Success"

        first = agent.next_message(5)
        assert first is not None
        assert (first.topic, first.payload) == (ns.topic(me, "config"), b"mine")
        assert _drain(agent, 0.2) == []


def test_wrong_password_is_refused(mqtt_namespace: MqttNamespace) -> None:
    ns = mqtt_namespace
    impostor = ds.BrokerUser(
        ns.agents[0].name, "not-the-password", ds.Role.AGENT, "site-a", "spot-1", "agent-1"
    )
    client = ns.client(impostor)
    reason = client.connect()
    # 2.0.11 answers "Not authorized" (135), not "Bad user name or password" (134).
    assert reason.is_failure
    assert reason.value == NOT_AUTHORIZED

    # The raw 3.1.1 probe sees the same: return code 5, not 4.
    broker = ns.broker
    assert ds.mqtt_connack(broker.host, broker.port, impostor.name, impostor.password) == 5
    assert ds.mqtt_connack(broker.host, broker.port, ns.admin.name, ns.admin.password) == 0


def test_broker_stop_start_and_kill_keep_working(
    mosquitto_factory: ServiceFactory[ds.Mosquitto],
) -> None:
    broker = mosquitto_factory()
    admin = broker.user("admin")
    agent = broker.user("agent-1")
    config_topic = agent.agent_topic("config")
    pid = broker.pid
    assert pid is not None and ds.pid_alive(pid)

    with mqtt_client(broker, admin) as operator:
        operator.connect()
        # Retained, so it has to come back from the persistence file after the restart.
        # Nobody subscribes yet: MQTT 5 acknowledges that with "No matching subscribers" (16),
        # which is a success code, not 0.
        ack = operator.publish(config_topic, b"v1", qos=1, retain=True)
        assert ack == "No matching subscribers" and not ack.is_failure

    broker.stop()
    assert not broker.is_running()
    assert not ds.pid_alive(pid)
    with pytest.raises(OSError):
        ds.mqtt_connack(broker.host, broker.port, admin.name, admin.password, timeout=1)

    broker.start()
    assert broker.pid != pid
    with mqtt_client(broker, agent) as client:
        assert not client.connect().is_failure
        client.subscribe(config_topic)
        msg = client.next_message(5)
        assert msg is not None and (msg.payload, msg.retain) == (b"v1", True)

    broker.kill()
    assert not broker.is_running()
    broker.start()
    with mqtt_client(broker, agent, tls=False) as client:
        assert not client.connect().is_failure
        assert not client.publish(agent.agent_topic("heartbeat"), b"hb", qos=1).is_failure


# --------------------------------------------------------------------------------------------
# S3


def test_s3_put_get_list_with_metadata(s3_bucket: S3Bucket) -> None:
    s3 = s3_bucket.client
    key = "site-a/spot-1/2026-01-01/crop-1.jpg"
    body = b"\xff\xd8\xff\xe0 not really a jpeg"
    s3.put_object(
        Bucket=s3_bucket.name,
        Key=key,
        Body=body,
        ContentType="image/jpeg",
        Metadata={"agent": "agent-1", "event-id": "e-123"},
    )
    s3.put_object(Bucket=s3_bucket.name, Key="site-b/other.jpg", Body=b"x")

    got = s3.get_object(Bucket=s3_bucket.name, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "image/jpeg"
    assert got["Metadata"] == {"agent": "agent-1", "event-id": "e-123"}

    listed = s3.list_objects_v2(Bucket=s3_bucket.name, Prefix="site-a/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [(key, len(body))]


def _http_status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_s3_presigned_url_works_and_tampering_is_refused(s3_bucket: S3Bucket) -> None:
    s3 = s3_bucket.client
    s3.put_object(Bucket=s3_bucket.name, Key="report.xlsx", Body=b"workbook bytes")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket.name, "Key": "report.xlsx"}, ExpiresIn=300
    )
    assert _http_status(url) == (200, b"workbook bytes")

    # Another key under the same signature, and a flipped signature character.
    assert _http_status(url.replace("report.xlsx", "other.xlsx"))[0] == 403
    head, _, sig = url.rpartition("X-Amz-Signature=")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert _http_status(f"{head}X-Amz-Signature={flipped}")[0] == 403

    # No signature at all.
    assert _http_status(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/report.xlsx")[0] == 403


def test_s3_refuses_wrong_keys(s3_bucket: S3Bucket) -> None:
    server = s3_bucket.server
    wrong_secret = server.client(secret_key="x" * 40, retries={"max_attempts": 1})
    with pytest.raises(ClientError) as err:
        wrong_secret.get_object(Bucket=s3_bucket.name, Key="anything")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    unknown_key = server.client(access_key="AKNOBODY", retries={"max_attempts": 1})
    with pytest.raises(ClientError) as err:
        unknown_key.put_object(Bucket=s3_bucket.name, Key="x", Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_s3_restart_and_crash_keep_objects(s3_factory: ServiceFactory[ds.S3Server]) -> None:
    server = s3_factory(buckets=["crops"])
    s3 = server.client()
    s3.put_object(Bucket="crops", Key="before-outage", Body=b"kept")

    server.stop()
    assert not server.is_running()
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        server.client(retries={"max_attempts": 1}, connect_timeout=1).list_buckets()

    server.start()
    assert s3.get_object(Bucket="crops", Key="before-outage")["Body"].read() == b"kept"
    s3.put_object(Bucket="crops", Key="before-crash", Body=b"also kept")

    server.kill()
    server.start()
    assert s3.get_object(Bucket="crops", Key="before-crash")["Body"].read() == b"also kept"


# --------------------------------------------------------------------------------------------
# PostgreSQL


def test_postgres_round_trip(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.dsn) as conn:
        conn.execute("CREATE TABLE events (id text PRIMARY KEY, spot text, at timestamptz)")
        conn.execute(
            "INSERT INTO events VALUES (%s, %s, now()), (%s, %s, now())",
            ("e-1", "spot-1", "e-2", "spot-2"),
        )
        conn.commit()
    with psycopg.connect(pg_database.dsn) as conn:
        rows = conn.execute("SELECT id, spot FROM events ORDER BY id").fetchall()
        user = conn.execute("SELECT current_user, current_database()").fetchone()
    assert rows == [("e-1", "spot-1"), ("e-2", "spot-2")]
    assert user == (pg_database.user, pg_database.name)


def test_postgres_sqlalchemy_url(pg_database: PgDatabase) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(pg_database.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()


def test_postgres_wrong_password_is_refused(postgres: ds.Postgres) -> None:
    dsn = postgres.dsn.replace(f"password={postgres.password}", "password=wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, connect_timeout=3)


# --------------------------------------------------------------------------------------------
# CLI and error paths


def _stderr(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)
    return proc.stderr.read() if proc.stderr is not None else ""


def test_cli_up_prints_env_and_down_stops_it() -> None:
    try:
        ds.mosquitto_binaries()
    except ds.MissingBinaryError as exc:
        unavailable(str(exc))
    # Not tmp_path: /tmp/pytest-of-root is 0700 and the broker runs as user mosquitto.
    state = Path(tempfile.mkdtemp(prefix="devsvc-cli-"))
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.devservices",
            "up",
            "--only",
            "mosquitto",
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert up.stdout is not None
        # services.env is complete before the first line is printed.
        first = up.stdout.readline()
        assert first, f"no env printed; stderr: {_stderr(up)}"
        written = ds.read_env_file(state / "services.env")
        lines = [first] + [up.stdout.readline() for _ in range(len(written) - 1)]
        env = dict(line.rstrip("\n").split("=", 1) for line in lines)
        assert env == written
        assert env["DEVSERVICES_STATE_DIR"] == str(state)
        port = int(env["MQTT_TLS_PORT"])
        context = ssl.create_default_context(cafile=env["MQTT_CA_FILE"])
        assert (
            ds.mqtt_connack(
                "127.0.0.1", port, "admin", env["MQTT_PASSWORD_ADMIN"], ssl_context=context
            )
            == 0
        )
        broker_pid = int((state / "mosquitto" / "mosquitto.pid").read_text())
        assert ds.pid_alive(broker_pid)

        down = subprocess.run(
            [sys.executable, "-m", "infra.devservices", "down", "--state-dir", str(state)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        assert "devservices up" in down.stdout
        assert up.wait(10) == 0
        assert not ds.pid_alive(broker_pid)
        assert not (state / "mosquitto" / "mosquitto.pid").exists()
    finally:
        if up.poll() is None:
            # SIGTERM, not SIGKILL: the services run in their own sessions and would outlive a
            # killed `up`.
            up.terminate()
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                up.kill()
                ds.main(["down", "--state-dir", str(state)])
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root-started services drop privileges")
def test_state_dir_the_service_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    try:
        ds.mosquitto_binaries()
    except ds.MissingBinaryError as exc:
        unavailable(str(exc))
    with pytest.raises(ds.ServiceError, match="unreachable for user 'mosquitto'"):
        ds.Mosquitto(state_dir=tmp_path / "broker")


def test_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ds.MissingBinaryError, match="apt-get install -y mosquitto"):
        common._require("no-such-mosquitto-binary", "mosquitto", "/nonexistent")
    monkeypatch.setenv("FOOTFALL_WEED_BIN", "/nonexistent/weed")
    with pytest.raises(ds.MissingBinaryError, match="FOOTFALL_WEED_BIN"):
        ds.weed_binary()


def test_start_failure_reports_log_tail(mosquitto_factory: ServiceFactory[ds.Mosquitto]) -> None:
    broker = mosquitto_factory(start=False, extra_config=["no_such_option true"], start_timeout=5)
    with pytest.raises(ds.ServiceError) as err:
        broker.start()
    message = str(err.value)
    assert "mosquitto did not start" in message
    assert "last lines of" in message and "no_such_option" in message
    assert not broker.is_running()


@pytest.mark.parametrize(("value", "outcome"), [("1", "fail"), ("", "skip"), ("0", "skip")])
def test_strict_flag_turns_skip_into_failure(
    monkeypatch: pytest.MonkeyPatch, value: str, outcome: str
) -> None:
    from tests import services

    monkeypatch.setenv(services.STRICT_ENV, value)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="mosquitto is missing"):
        services.unavailable("mosquitto is missing")


def test_ports_are_outside_the_ephemeral_range() -> None:
    low, _ = common._ephemeral_range()
    ports = ds.free_ports(20)
    common._release_ports(ports)
    assert len(set(ports)) == 20
    assert all(1024 < p < low for p in ports)

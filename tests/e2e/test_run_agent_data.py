"""``footfall-agent run`` end to end: a real clip through the real pipeline into the outbox, events
to the real broker, crops to the real S3; to the end of the clip, and stopped by SIGTERM."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest

from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract import AgentStatus, PersonEvent, decode
from tests.services import MqttNamespace, MqttTestClient, S3Bucket

pytestmark = [pytest.mark.data, pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _config(tmp_path: Path, clip: Path, ns: MqttNamespace, bucket: S3Bucket) -> Path:
    agent = ns.agents[0]
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
site = "site-a"
spot = "spot-1"
agent = "agent-1"
mode = "face"  # the clip is a face close-up
data_dir = "{tmp_path / "data"}"

[source]
url = "{clip}"

[detector]
detect_every_n_frames = 2

[delivery]
heartbeat_seconds = 0.5
confirm = "broker"  # a bare subscriber, no aggregator sending receipts

[mqtt]
host = "{ns.broker.host}"
port = {ns.broker.tls_port}
ca_file = "{ns.broker.ca_file}"
username = "{agent.name}"
topic_prefix = "{ns.prefix}"

[s3]
endpoint_url = "{bucket.endpoint_url}"
region = "{bucket.region}"
bucket = "{bucket.name}"
access_key_id = "{bucket.access_key}"
""",
        encoding="utf-8",
    )
    return path


class Watcher:
    def __init__(self, ns: MqttNamespace) -> None:
        self.client: MqttTestClient = ns.client(ns.aggregator)
        assert not self.client.connect().is_failure
        self.client.subscribe(f"{ns.prefix}/site-a/spot-1/agent-1/#")
        self.events: list[PersonEvent] = []
        self.statuses: list[tuple[str, AgentStatus]] = []

    def pump(self) -> int:
        """Take what arrived; the number of events so far."""
        while (msg := self.client.next_message(0.0)) is not None:
            channel = msg.topic.rsplit("/", 1)[1]
            if channel == "events":
                self.events.append(PersonEvent.model_validate_json(msg.payload))
            else:
                self.statuses.append((channel, decode(AgentStatus, msg.payload)))
        return len(self.events)

    def last_heartbeat(self) -> AgentStatus | None:
        self.pump()
        beats = [s for channel, s in self.statuses if channel == "heartbeat"]
        return beats[-1] if beats else None


def _start(
    config: Path, models_dir: Path, ns: MqttNamespace, bucket: S3Bucket
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "FOOTFALL_AGENT__MQTT__PASSWORD": ns.agents[0].password,
        "FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY": bucket.secret_key,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "run",
            "--config",
            str(config),
            "--models-dir",
            str(models_dir),
            "--start",
            "2026-05-01T10:00:00+02:00",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_run_delivers_a_clip_to_broker_and_s3(
    shared_dir: Path,
    models_dir: Path,
    mqtt_namespace: MqttNamespace,
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, shared_dir / "video" / "Megamind.avi", mqtt_namespace, s3_bucket)
    watcher = Watcher(mqtt_namespace)
    try:
        proc = _start(config, models_dir, mqtt_namespace, s3_bucket)
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output
        wait_for(lambda: watcher.pump() >= 5, "the events", 10)
    finally:
        watcher.client.close()

    with Outbox(outbox_path(tmp_path / "data")) as box:
        status = box.status()
    assert status.entries == 0
    assert status.counters.events_published == status.counters.events_accepted
    assert len({e.event_id for e in watcher.events}) == status.counters.events_accepted
    for event in watcher.events:
        assert (event.site, event.spot, event.agent) == ("site-a", "spot-1", "agent-1")
        assert event.first_seen.isoformat().startswith("2026-05-01T08:00")
        assert event.crop is not None
        body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=event.crop.key)["Body"]
        assert hashlib.sha256(body.read()).hexdigest() == event.crop.sha256
    online = [s for ch, s in watcher.statuses if ch == "status" and s.state.value == "online"]
    offline = [s for ch, s in watcher.statuses if ch == "status" and s.state.value == "offline"]
    assert online and offline and offline[-1].stats is not None
    assert [m.name for m in online[0].models][:1] == ["yunet"]
    final = offline[-1].stats
    assert final.events_emitted == final.events_sent == status.counters.events_accepted
    assert final.frames_processed > 0 and final.outbox_depth == 0
    # The statuses are on the footage's clock, as the events are: online at the time reached
    # when the connection was made, heartbeats from the first frame on, one per
    # heartbeat_seconds (0.5) of footage, and the goodbye at the clip's end.
    first = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    capture = cv2.VideoCapture(str(shared_dir / "video" / "Megamind.avi"))
    end = first + timedelta(seconds=final.frames_processed / capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    beats = [s.sent_at for ch, s in watcher.statuses if ch == "heartbeat"]
    assert beats[0] == first <= online[0].sent_at < end
    assert all(b - a == timedelta(seconds=0.5) for a, b in itertools.pairwise(beats[:-1]))
    assert timedelta(0) < beats[-1] - beats[-2] <= timedelta(seconds=0.5)
    assert abs(offline[-1].sent_at - end) < timedelta(milliseconds=1)
    assert offline[-1].sent_at == beats[-1]


def test_sigterm_drains_everything_the_pipeline_emitted(
    shared_dir: Path,
    models_dir: Path,
    mqtt_namespace: MqttNamespace,
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, shared_dir / "video" / "Megamind.avi", mqtt_namespace, s3_bucket)
    watcher = Watcher(mqtt_namespace)
    proc = _start(config, models_dir, mqtt_namespace, s3_bucket)
    try:

        def processing() -> bool:
            beat = watcher.last_heartbeat()
            return beat is not None and beat.stats is not None and beat.stats.frames_processed > 20

        wait_for(processing, "the pipeline to process frames", 120)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert "SIGTERM: stopping" in output
        with Outbox(outbox_path(tmp_path / "data")) as box:
            counters = box.status().counters
        # Everyone still in view when the signal came was emitted, and all of it was sent.
        assert counters.events_published == counters.events_accepted
        wait_for(
            lambda: watcher.pump() >= counters.events_accepted,
            "the drained events",
            10,
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.client.close()
    offline = [s for ch, s in watcher.statuses if ch == "status" and s.state.value == "offline"]
    assert offline and offline[-1].stats is not None
    assert offline[-1].stats.events_sent == counters.events_accepted
    assert len({e.event_id for e in watcher.events}) == counters.events_accepted


def test_run_with_missing_files_stops_at_once_and_runs_once_they_are_installed(
    shared_dir: Path,
    models_dir: Path,
    mqtt_namespace: MqttNamespace,
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    """What systemd sees: each start with a file missing exits 1 within seconds, with one line
    naming the setting and the file and before the camera opens; once the files are installed the
    next start delivers the clip."""
    etc = tmp_path / "etc"
    etc.mkdir()
    ca, password, secret = etc / "ca.crt", etc / "mqtt.password", etc / "s3.secret"
    config = _config(tmp_path, shared_dir / "video" / "Megamind.avi", mqtt_namespace, s3_bucket)
    text = config.read_text(encoding="utf-8").replace(
        f'ca_file = "{mqtt_namespace.broker.ca_file}"', f'ca_file = "{ca}"'
    )
    text = text.replace("[s3]", f'password_file = "{password}"\n\n[s3]')
    config.write_text(text + f'secret_access_key_file = "{secret}"\n', encoding="utf-8")
    password.write_text(mqtt_namespace.agents[0].password + "\n", encoding="utf-8")

    def start() -> tuple[int, str, float]:
        began = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "run",
                "--config",
                str(config),
                "--models-dir",
                str(models_dir),
                "--start",
                "2026-05-01T10:00:00+02:00",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = proc.communicate(timeout=240)
        return proc.returncode, output, time.monotonic() - began

    missing = "cannot read it: No such file or directory"
    for installed, line in [
        (None, f"error: mqtt.ca_file {ca}: {missing}"),
        (ca, f"error: s3.secret_access_key_file {secret}: {missing}"),
    ]:
        if installed is not None:
            installed.write_bytes(Path(mqtt_namespace.broker.ca_file).read_bytes())
        code, output, seconds = start()
        assert code == 1, output
        assert output.splitlines() == [line], output
        assert seconds < 30
        assert not (tmp_path / "data").exists()  # no outbox, no camera, no models

    secret.write_text(s3_bucket.secret_key + "\n", encoding="utf-8")
    watcher = Watcher(mqtt_namespace)
    try:
        code, output, _ = start()
        assert code == 0, output
        wait_for(lambda: watcher.pump() >= 5, "the events", 10)
    finally:
        watcher.client.close()
    for event in watcher.events:
        assert event.crop is not None
        body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=event.crop.key)["Body"]
        assert hashlib.sha256(body.read()).hexdigest() == event.crop.sha256

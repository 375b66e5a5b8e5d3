"""Helpers for tests and benchmarks that run real aggregator processes against a real broker."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from footfall.contract import PersonEvent

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BrokerAccess:
    """How a client reaches the broker under test."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def aggregator_config(
    path: Path,
    broker: BrokerAccess,
    store_url: str,
    *,
    client_id: str,
    group: str = "aggregators",
    prefix: str = "footfall/v1",
    extra_ingest: str = "",
) -> Path:
    lines = [
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f"tls = {'true' if broker.tls else 'false'}",
        f'topic_prefix = "{prefix}"',
        "reconnect_min_seconds = 0.5",
        "reconnect_max_seconds = 2",
    ]
    if broker.ca_file is not None:
        lines.append(f'ca_file = "{broker.ca_file}"')
    if broker.username is not None:
        lines.append(f'username = "{broker.username}"')
    lines += [
        "[ingest]",
        f'client_id = "{client_id}"',
        f'shared_group = "{group}"',
        "stats_interval_seconds = 5",
        # The test events are dated 2026-05-01 whatever day the suite runs on; the live window
        # has its own unit tests.
        "event_max_age_days = 36500",
        extra_ingest,
        "[store]",
        f'url = "{store_url}"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class AggregatorProcess:
    """``python -m aggregator run`` in a subprocess, with its log in a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> "AggregatorProcess":
        self._starts += 1
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--config", str(self.config)],
            cwd=REPO,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        return self

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def wait_connected(self, timeout: float = 30) -> None:
        wait_for(
            lambda: self.log_text().count("connected to ") >= self._starts or not self.alive,
            timeout,
            f"the aggregator to connect (log {self.log})",
        )
        assert self.alive, f"aggregator exited:\n{self.log_text()}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    def __init__(
        self,
        broker: BrokerAccess,
        client_id: str,
        *,
        v5: bool = True,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.ca_file is not None:
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, messages: Iterable[tuple[str, bytes]], *, retain: bool = False) -> int:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=120)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self) -> None:
        """Drop the connection without DISCONNECT, as a killed process would: the broker then
        publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def event_messages(
    events: Sequence[PersonEvent], prefix: str = "footfall/v1"
) -> list[tuple[str, bytes]]:
    return [(f"{prefix}/{e.site}/{e.spot}/{e.agent}/events", e.to_json()) for e in events]

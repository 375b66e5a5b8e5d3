"""Nothing lost through outages: 10,000 events from a real agent process to a real broker while
the broker is stopped and restarted twice and the agent is killed with SIGKILL once.

The subscriber is an MQTT 3.1.1 persistent session (those survive a Mosquitto 2.0.11 restart;
MQTT 5 sessions did not), so it misses nothing the broker acknowledged while it was away. The test
asserts that the set of event ids it received equals the produced set, and reports how many
arrived more than once: at-least-once delivery, deduplicated downstream by event id.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract import AgentStatus, decode
from footfall.contract.topics import AgentAddress
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.services import ServiceFactory

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
EVENTS = 10_000
SEED = 20260501


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Collector:
    """A 3.1.1 persistent-session subscriber that reconnects by itself (paho's loop thread)."""

    def __init__(self, broker: ds.Mosquitto, user: ds.BrokerUser, topics: list[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topics = topics
        self.events: list[str] = []
        self.statuses: list[AgentStatus] = []
        self.connects = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"collector-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.username_pw_set(user.name, user.password)
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.reconnect_delay_set(1, 1)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.tls_port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self.connects += 1
            for topic in self.topics:
                client.subscribe(topic, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            if msg.topic.endswith("/events"):
                self.events.append(json.loads(msg.payload)["event_id"])
            elif msg.payload:
                self.statuses.append(decode(AgentStatus, msg.payload))

    def unique(self) -> int:
        with self._lock:
            return len(set(self.events))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _agent_config(path: Path, broker: ds.Mosquitto, data_dir: Path) -> None:
    path.write_text(
        f"""
site = "{ADDRESS.site}"
spot = "{ADDRESS.spot}"
agent = "{ADDRESS.agent}"
data_dir = "{data_dir}"

[outbox]
synchronous = "full"

[delivery]
# The collector is a bare subscriber that sends no receipts: this is the broker-confirmed mode.
confirm = "broker"
heartbeat_seconds = 1.0
inflight_window = 100
shutdown_drain_seconds = 20.0

[mqtt]
host = "{broker.host}"
port = {broker.tls_port}
protocol = "5"
tls = true
ca_file = "{broker.ca_file}"
username = "agent-1"
reconnect_min_seconds = 0.1
reconnect_max_seconds = 1.0
""",
        encoding="utf-8",
    )


class AgentProcess:
    def __init__(self, config: Path, password: str, log_dir: Path) -> None:
        self.config, self.password, self.log_dir = config, password, log_dir
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.runs += 1
        env = {**os.environ, "FOOTFALL_AGENT__MQTT__PASSWORD": self.password}
        with (self.log_dir / f"agent-{self.runs}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.agent_driver",
                    str(self.config),
                    f"--events={EVENTS}",
                    f"--seed={SEED}",
                    "--rate=800",
                    "--batch=25",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def log_tail(self) -> str:
        text = (self.log_dir / f"agent-{self.runs}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_ten_thousand_events_through_broker_restarts_and_an_agent_kill(
    mosquitto_factory: ServiceFactory[ds.Mosquitto],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    broker = mosquitto_factory()
    produced = {str(e.event_id) for e, _ in synthetic_events(EVENTS, seed=SEED, address=ADDRESS)}
    base = f"{broker.topic_prefix}/{ADDRESS.site}/{ADDRESS.spot}/{ADDRESS.agent}"
    collector = Collector(broker, broker.user("aggregator"), [f"{base}/events", f"{base}/status"])
    config = tmp_path / "agent.toml"
    data_dir = tmp_path / "agent-data"
    _agent_config(config, broker, data_dir)
    agent = AgentProcess(config, broker.user("agent-1").password, tmp_path)
    try:
        wait_for(lambda: collector.connects == 1, "the collector to connect", 10)
        agent.start()

        def reach(n: int) -> None:
            wait_for(lambda: collector.unique() >= n, f"{n:,} events at the collector", 60)

        reach(1_500)
        broker.stop()  # SIGTERM: the broker saves the collector's queue
        time.sleep(1.0)  # the agent keeps producing into its outbox meanwhile
        broker.start()

        reach(4_000)
        kills_at = len(collector.statuses)
        agent.kill()
        agent.start()

        reach(6_500)
        broker.stop()
        time.sleep(1.0)
        broker.start()

        reach(EVENTS)
        assert agent.terminate() == 0, agent.log_tail()
        # The retained offline status of the graceful stop arrives after the last event.
        wait_for(
            lambda: (
                bool(collector.statuses)
                and collector.statuses[-1].state.value == "offline"
                and collector.statuses[-1].stats is not None
            ),
            "the offline status of the graceful stop",
            10,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- agent log ---\n{agent.log_tail()}") from None
    finally:
        agent.close()
        collector.close()

    received = collector.events
    assert set(received) == produced, (
        f"lost {len(produced - set(received))}, unexpected {len(set(received) - produced)}"
    )
    duplicates = len(received) - len(set(received))
    print(
        f"\n{EVENTS:,} events produced, {len(received):,} received, {len(set(received)):,} "
        f"unique, {duplicates:,} duplicates at the transport (removed downstream by event id)"
    )
    record_property("transport_duplicates", duplicates)
    assert all(uuid.UUID(e) for e in set(received))

    # After the kill the broker sent the will: offline, without stats.
    wills = [s for s in collector.statuses[kills_at:] if s.stats is None]
    assert wills and all(w.state.value == "offline" for w in wills)
    with Outbox(outbox_path(data_dir)) as box:
        status = box.status()
    assert (status.depth, status.entries) == (0, 0)
    assert status.counters.events_accepted == EVENTS
    assert status.counters.events_published == EVENTS

"""Remote configuration end to end against the real Mosquitto: a running agent (real delivery
wiring, real pipeline with a scripted detector) and the operator's ``fleet push-config``."""

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from edge_agent.agent import Delivery
from edge_agent.config import AgentConfig
from edge_agent.remote_config import RemoteConfigManager
from edge_agent.running import run_agent
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.sources import SourceCondition, TimedFrame
from footfall.contract import AgentStatus, ConfigOutcome, ConfigResult, SourceState, decode
from infra import devservices as ds
from models.runtime.classifier import FakeClassifier
from tests.services import MqttNamespace

runner = CliRunner()


class EndlessSource:
    """A live camera that shows an empty grey scene, 50 frames a second, until stopped."""

    live = True
    reconnects = 0
    frame_count = None

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        image = np.full((240, 320, 3), 128, np.uint8)
        index = 0
        while not stop.wait(0.02):
            yield TimedFrame(image, datetime.now(UTC), index)
            index += 1

    def condition(self) -> SourceCondition:
        return SourceCondition(SourceState.DELIVERING)

    def close(self) -> None:
        return None


class DarkSource(EndlessSource):
    """A live camera that is down: no frame ever comes."""

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        stop.wait()
        yield from ()


class RunningAgent:
    def __init__(self, config: AgentConfig, source: EndlessSource | None = None) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.pipeline: Pipeline | None = None
        self.delivery: Delivery | None = None
        self.error: BaseException | None = None

        def attach(pipeline: Pipeline, delivery: Delivery) -> None:
            self.pipeline, self.delivery = pipeline, delivery
            self.ready.set()

        def main() -> None:
            try:
                run_agent(
                    config,
                    source or EndlessSource(),
                    FakeDetector([]),
                    FakeClassifier(),
                    stop=self.stop,
                    on_pipeline=attach,
                )
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=main, name="agent-under-test", daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def _wait_for(check: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def operator(mqtt_namespace: MqttNamespace) -> Iterator[ds.BrokerUser]:
    user = ds.BrokerUser(
        f"ops-{secrets.token_hex(4)}",
        secrets.token_hex(12),
        ds.Role.OPERATOR,
        topic_prefix=mqtt_namespace.prefix,
    )
    mqtt_namespace.broker.add_users([user])
    yield user
    mqtt_namespace.broker.remove_users([user.name])


def _operator_config(tmp_path: Path, ns: MqttNamespace, operator: ds.BrokerUser) -> Path:
    """The operator's aggregator config for ``fleet`` commands (password from the environment)."""
    path = tmp_path / "operator.toml"
    path.write_text(
        f'[mqtt]\nhost = "{ns.broker.host}"\nport = {ns.broker.tls_port}\n'
        f'ca_file = "{ns.broker.ca_file}"\nusername = "{operator.name}"\n'
        f'topic_prefix = "{ns.prefix}"\n'
    )
    return path


def test_moved_line_applied_without_restart_and_bad_config_rejected(
    mqtt_namespace: MqttNamespace,
    operator: ds.BrokerUser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = mqtt_namespace
    agent_user = ns.agents[0]
    config = AgentConfig.model_validate(
        {
            "config_version": "file-1",
            "mode": "face",  # a scripted face detector
            "site": agent_user.site,
            "spot": agent_user.spot,
            "agent": agent_user.agent,
            "data_dir": tmp_path / "agent",
            "mqtt": ns.broker_settings(agent_user),
            "delivery": {"heartbeat_seconds": 0.5, "shutdown_drain_seconds": 1},
        }
    )
    ops_config = _operator_config(tmp_path, ns, operator)
    monkeypatch.setenv("FOOTFALL_AGGREGATOR__MQTT__PASSWORD", operator.password)
    moved = tmp_path / "moved.toml"
    moved.write_text(
        'config_version = "moved-1"\n[counting]\nline = [[0.0, 0.4], [1.0, 0.4]]\n'
        'in_towards = "bottom"\n'
    )
    # Valid on its own, so push-config publishes it; the agent refuses it merged with its file
    # (tracker.low_score under the detector's threshold).
    bad = tmp_path / "bad.toml"
    bad.write_text('config_version = "bad-2"\n[tracker]\nlow_score = 0.2\n')
    where = ["--site", agent_user.site or "", "--spot", agent_user.spot or ""]
    push = ["fleet", "push-config", "--config", str(ops_config), "--agent", agent_user.agent or ""]

    heartbeats: list[AgentStatus] = []
    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(ns.topic(agent_user, "heartbeat"))

        def heartbeat_says(version: str) -> bool:
            message = watcher.next_message(timeout=0.2)
            if message is not None:
                heartbeats.append(decode(AgentStatus, message.payload))
            return bool(heartbeats) and heartbeats[-1].config_version == version

        agent = RunningAgent(config)
        try:
            assert _wait_for(lambda: heartbeat_says("file-1"))
            pipeline = agent.pipeline
            assert pipeline is not None and pipeline.counting.line == ((0.5, 0.0), (0.5, 1.0))

            result = runner.invoke(app, [*push, *where, str(moved), "--wait", "20"])
            assert result.exit_code == 0, result.output
            assert "agent-1: applied; configuration in effect: moved-1" in result.output
            assert _wait_for(lambda: pipeline.config_version == "moved-1")
            assert pipeline.counting.line == ((0.0, 0.4), (1.0, 0.4))
            assert pipeline.counting.in_towards == "bottom"
            assert _wait_for(lambda: heartbeat_says("moved-1"))

            result = runner.invoke(app, [*push, *where, str(bad), "--wait", "20"])
            assert result.exit_code == 3, result.output
            assert (
                "agent-1: REJECTED bad-2: tracker: low_score (0.2) is below "
                "detector.score_threshold (0.5)"
            ) in result.output
            assert "still running moved-1" in result.output
            # Still running, still on the moved line.
            assert agent.thread.is_alive() and agent.error is None
            heartbeats.clear()
            assert _wait_for(lambda: heartbeat_says("moved-1"))
            assert pipeline.counting.line == ((0.0, 0.4), (1.0, 0.4))
        finally:
            agent.close()
        assert agent.error is None

    # A restart keeps the applied config (saved under the data dir), before any broker answer.
    assert RemoteConfigManager.load(config).active.config_version == "moved-1"


def test_push_config_refused_for_an_account_without_the_operator_role(
    mqtt_namespace: MqttNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = mqtt_namespace
    aggregator = ns.aggregator
    ops_config = tmp_path / "aggregator.toml"
    ops_config.write_text(
        f'[mqtt]\nhost = "{ns.broker.host}"\nport = {ns.broker.tls_port}\n'
        f'ca_file = "{ns.broker.ca_file}"\nusername = "{aggregator.name}"\n'
        f'topic_prefix = "{ns.prefix}"\n'
    )
    monkeypatch.setenv("FOOTFALL_AGGREGATOR__MQTT__PASSWORD", aggregator.password)
    moved = tmp_path / "moved.toml"
    moved.write_text('config_version = "m"\n[crops]\npolicy = "drop"\n')
    result = runner.invoke(
        app,
        [
            "fleet",
            "push-config",
            str(moved),
            "--config",
            str(ops_config),
            "--agent",
            "agent-1",
            "--site",
            "site-a",
            "--spot",
            "spot-1",
        ],
    )
    assert result.exit_code == 1
    assert "Not authorized (reason code 135); the account needs the operator role" in (
        result.output
    )


def test_a_rejected_push_leaves_the_last_good_config_retained(
    mqtt_namespace: MqttNamespace,
    operator: ds.BrokerUser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The version in effect is in the retained status at once, even from a camera that sends
    no frame and with an hour between heartbeats; after a rejection the broker holds the last
    good config again, so neither a restart nor a new device meets the rejected one."""
    ns = mqtt_namespace
    agent_user = ns.agents[0]

    def agent_config(data_dir: Path) -> AgentConfig:
        return AgentConfig.model_validate(
            {
                "config_version": "file-1",
                "mode": "face",
                "site": agent_user.site,
                "spot": agent_user.spot,
                "agent": agent_user.agent,
                "data_dir": data_dir,
                "mqtt": ns.broker_settings(agent_user),
                "delivery": {"heartbeat_seconds": 3600, "shutdown_drain_seconds": 1},
            }
        )

    ops_config = _operator_config(tmp_path, ns, operator)
    monkeypatch.setenv("FOOTFALL_AGGREGATOR__MQTT__PASSWORD", operator.password)
    good = tmp_path / "good.toml"
    good.write_text('config_version = "good-1"\n[crops]\npolicy = "drop"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('config_version = "bad-2"\n[tracker]\nlow_score = 0.2\n')
    push = [
        *("fleet", "push-config", "--config", str(ops_config), "--agent", agent_user.agent or ""),
        *("--site", agent_user.site or "", "--spot", agent_user.spot or "", "--wait", "20"),
    ]
    config_topic = ns.topic(agent_user, "config")

    def retained_config() -> bytes | None:
        with ns.client(ns.aggregator) as reader:
            assert not reader.connect().is_failure
            reader.subscribe(config_topic)
            message = reader.next_message(timeout=1.0)
            return message.payload if message is not None and message.retain else None

    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(ns.topic(agent_user, "status"))
        watcher.subscribe(ns.topic(agent_user, "config-result"))
        statuses: list[AgentStatus] = []
        results: list[ConfigResult] = []

        def take(timeout: float = 0.2) -> bool:
            message = watcher.next_message(timeout=timeout)
            if message is None:
                return False
            if message.topic.endswith("/status"):
                statuses.append(decode(AgentStatus, message.payload))
            else:
                results.append(decode(ConfigResult, message.payload))
            return True

        def drain() -> None:
            while take(0.5):
                pass
            statuses.clear()
            results.clear()

        def status_says(version: str) -> bool:
            take()
            return bool(statuses) and statuses[-1].config_version == version

        first = RunningAgent(agent_config(tmp_path / "device-1"), DarkSource())
        try:
            assert _wait_for(lambda: status_says("file-1"))
            result = runner.invoke(app, [*push, str(good)])
            assert result.exit_code == 0, result.output
            assert _wait_for(lambda: status_says("good-1"))
            result = runner.invoke(app, [*push, str(bad)])
            assert result.exit_code == 3, result.output
            assert "REJECTED bad-2" in result.output
            statuses.clear()
            assert _wait_for(lambda: status_says("good-1"))
            assert _wait_for(lambda: retained_config() is not None)
            restored = retained_config()
            assert restored is not None and b'"good-1"' in restored
        finally:
            first.close()
        assert first.error is None

        # A restart of the same device: the retained config is the good one, applied again.
        drain()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge_agent.remote_config"):
            again = RunningAgent(agent_config(tmp_path / "device-1"), DarkSource())
            try:
                assert _wait_for(lambda: take() and bool(results))
                assert (results[0].outcome, results[0].config_version) == (
                    ConfigOutcome.APPLIED,
                    "good-1",
                )
            finally:
                again.close()
        assert again.error is None
        said = [
            (r.levelno, r.getMessage())
            for r in caplog.records
            if r.name == "edge_agent.remote_config"
        ]
        assert (logging.INFO, "remote configuration good-1 applied") in said
        assert not [m for level, m in said if level >= logging.WARNING], said

        # A new device on that address (nothing saved) gets the last good config.
        drain()
        fresh = RunningAgent(agent_config(tmp_path / "device-2"), DarkSource())
        try:
            assert _wait_for(lambda: status_says("good-1"))
            assert statuses[0].config_version == "file-1"  # its online status, from its file
            assert [(r.outcome, r.active_version) for r in results] == [
                (ConfigOutcome.APPLIED, "good-1")
            ]
        finally:
            fresh.close()
        assert fresh.error is None
    assert retained_config() == restored

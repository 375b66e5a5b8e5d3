"""An agent whose camera cannot be reached (``rtsp://127.0.0.1:1``, nothing listens there), through
the real Mosquitto and a real aggregator process into the store: its ``/readyz`` says why it is not
ready, its heartbeats say ``reconnecting`` with the source's error, and ``fleet`` shows it and
exits 3 - then still 3 once the agent has gone offline."""

import threading
import urllib.error
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.store import AgentRow, EventStore
from edge_agent.config import AgentConfig
from edge_agent.running import run_agent
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.sources import LiveSource
from footfall.contract import AgentState, SourceState
from infra import devservices as ds
from models.runtime.classifier import FakeClassifier
from tests.ingest_support import AggregatorProcess, BrokerAccess, aggregator_config, wait_for
from tests.services import MqttNamespace

DEAD = "rtsp://127.0.0.1:1"
ERROR = f"video source {DEAD} cannot be opened"
runner = CliRunner()


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def _agent(store_url: str) -> AgentRow | None:
    store = EventStore.open(store_url, upgrade=False)
    try:
        agents = store.agents()
    finally:
        store.close()
    return agents[0] if agents else None


def _row(table: str, agent: str) -> list[str]:
    """The cells of the agent's row, each put together again from the lines rich wrapped it on."""
    lines = table.splitlines()
    first = next(i for i, line in enumerate(lines) if f"│ {agent} " in line)
    parts = [[c.strip() for c in line.split("│")[1:-1]] for line in lines[first:]]
    # A wrapped row goes on over lines whose site column is empty, up to the table's bottom.
    rows = [parts[0], *(p for p in _continuation(parts[1:]))]
    return [" ".join(filter(None, column)) for column in zip(*rows, strict=True)]


def _continuation(parts: list[list[str]]) -> list[list[str]]:
    out = []
    for cells in parts:
        if not cells or cells[0]:
            break
        out.append(cells)
    return out


def test_dead_rtsp_source_is_reconnecting_in_readyz_heartbeats_and_fleet(
    mqtt_namespace: MqttNamespace, tmp_path: Path
) -> None:
    ns = mqtt_namespace
    user = ns.agents[0]
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    access = BrokerAccess(
        ns.broker.host, ns.broker.tls_port, ns.aggregator.name, None, ns.broker.ca_file
    )
    aggregator = AggregatorProcess(
        aggregator_config(
            tmp_path / "aggregator.toml", access, store_url, client_id="agg-dead", prefix=ns.prefix
        ),
        tmp_path / "aggregator.log",
        {"FOOTFALL_AGGREGATOR__MQTT__PASSWORD": ns.aggregator.password},
    ).start()
    (health_port,) = ds.free_ports(1)
    config = AgentConfig.model_validate(
        {
            "mode": "face",
            "site": user.site,
            "spot": user.spot,
            "agent": user.agent,
            "data_dir": tmp_path / "agent",
            "source": {"url": DEAD},
            "mqtt": ns.broker_settings(user),
            "delivery": {"heartbeat_seconds": 0.5, "shutdown_drain_seconds": 1},
            "health": {"port": health_port},
        }
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            source = LiveSource(DEAD, reconnect_min_seconds=0.2, reconnect_max_seconds=0.5)
            run_agent(config, source, FakeDetector([]), FakeClassifier(), stop=stop)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=main, name="agent-dead-source", daemon=True)
    try:
        aggregator.wait_connected()
        thread.start()
        # Connected to the broker, so the source is the one reason left.
        wait_for(
            lambda: (
                _readyz(health_port) == (503, f"not ready: video source reconnecting: {ERROR}\n")
            ),
            20,
            f"/readyz to blame the source (last answer {_readyz(health_port)})",
        )

        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics") as response:
            metrics = response.read().decode()
        assert "\nfootfall_agent_source_delivering 0.0\n" in metrics

        def reconnecting() -> bool:
            agent = _agent(store_url)
            # pending_at: a heartbeat came, not only the online status made at connect.
            return (
                agent is not None
                and agent.source_state is SourceState.RECONNECTING
                and agent.pending_at is not None
            )

        wait_for(reconnecting, 20, "a heartbeat saying the source reconnects")
        agent = _agent(store_url)
        assert agent is not None
        assert (agent.state, agent.source_error, agent.last_error) == (
            AgentState.ONLINE,
            ERROR,
            ERROR,
        )
        assert agent.fps == 0.0 and (agent.source_reconnects or 0) >= 1
        assert (agent.outbox_depth, agent.crops_pending) == (0, 0)

        where = f"{user.site}/{user.spot}/{user.agent}"
        result = runner.invoke(app, ["fleet", "--store", store_url, "--silent-after", "1h"])
        assert result.exit_code == 3, result.output
        cells = _row(result.stdout, user.agent or "")
        assert cells[3:5] == ["NO VIDEO", "reconnecting"]
        assert cells[-1].replace(" ", "") == ERROR.replace(" ", "")  # wrapped, never cut
        assert result.stderr.strip().splitlines()[-1] == f"1 of 1 not counting: {where} (NO VIDEO)"

        stop.set()
        thread.join(30)
        assert not thread.is_alive() and not failure, failure
        wait_for(
            lambda: (a := _agent(store_url)) is not None and a.state is AgentState.OFFLINE,
            20,
            "the agent's offline status",
        )
        result = runner.invoke(app, ["fleet", "--store", store_url, "--silent-after", "1h"])
        assert result.exit_code == 3, result.output
        assert result.stderr.strip().splitlines()[-1] == f"1 of 1 not counting: {where} (offline)"
    finally:
        stop.set()
        thread.join(30) if thread.is_alive() else None
        assert aggregator.stop() == 0, aggregator.log_text()

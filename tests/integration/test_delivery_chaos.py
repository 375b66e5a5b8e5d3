"""Zero loss end to end, device to PostgreSQL, through everything that can go wrong at once.

A real agent process (``tests.integration.agent_driver``: synthetic events into the real outbox,
published by the real sender) and a real aggregator process (MQTT 5 shared subscription, commit
child, PostgreSQL), with the broker crashed (``kill -9``) and restarted gracefully while the
aggregator is frozen (SIGSTOP), so the agent reconnects **before** the aggregator every time - the
order in which a broker that lost the aggregators' shared-subscription session answers "No
matching subscribers" - and the agent and the aggregator each killed with SIGKILL once.

The assertion is the product's promise: every produced event id is in the store exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.store import EventStore
from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract.topics import AgentAddress
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.ingest_support import AggregatorProcess, BrokerAccess, aggregator_config, wait_for
from tests.services import PgDatabase, ServiceFactory

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
EVENTS = 6_000
SEED = 20261202


def _agent_config(path: Path, broker: ds.Mosquitto, data_dir: Path, protocol: str) -> Path:
    path.write_text(
        f"""
site = "{ADDRESS.site}"
spot = "{ADDRESS.spot}"
agent = "{ADDRESS.agent}"
data_dir = "{data_dir}"

[delivery]
heartbeat_seconds = 1.0
inflight_window = 100
shutdown_drain_seconds = 20.0

[mqtt]
host = "{broker.host}"
port = {broker.tls_port}
protocol = "{protocol}"
tls = true
ca_file = "{broker.ca_file}"
username = "agent-1"
reconnect_min_seconds = 0.1
reconnect_max_seconds = 1.0
""",
        encoding="utf-8",
    )
    return path


class Agent:
    """The agent driver in a subprocess; restarted, it produces the rest of the same events."""

    def __init__(self, config: Path, password: str, log_dir: Path, rate: float) -> None:
        self.config, self.password, self.log_dir, self.rate = config, password, log_dir, rate
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.log_dir / f"agent-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        env = {**os.environ, "FOOTFALL_AGENT__MQTT__PASSWORD": self.password}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.agent_driver",
                    str(self.config),
                    f"--events={EVENTS}",
                    f"--seed={SEED}",
                    f"--rate={self.rate}",
                    "--batch=10",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        return "\n".join(
            (self.log_dir / f"agent-{i}.log").read_text(errors="replace")
            for i in range(1, self.runs + 1)
        )

    def connects(self) -> int:
        return self.log_text().count("MQTT connected")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Chaos:
    """The services and processes of one run, and the moves of the chaos."""

    def __init__(
        self,
        tmp_path: Path,
        broker: ds.Mosquitto,
        db: PgDatabase,
        *,
        rate: float,
        protocol: str = "5",
    ) -> None:
        self.broker = broker
        self.db = db
        self.produced = {
            str(e.event_id) for e, _ in synthetic_events(EVENTS, seed=SEED, address=ADDRESS)
        }
        self.data_dir = tmp_path / "agent-data"
        config = _agent_config(tmp_path / "agent.toml", broker, self.data_dir, protocol)
        self.agent = Agent(config, broker.user("agent-1").password, tmp_path, rate)
        self.aggregators: list[AggregatorProcess] = []
        self.tmp_path = tmp_path
        self.store = EventStore.open(db.url)

    def aggregator(self, client_id: str, extra_ingest: str = "") -> AggregatorProcess:
        user = self.broker.user("aggregator")
        access = BrokerAccess(
            self.broker.host, self.broker.tls_port, user.name, user.password, self.broker.ca_file
        )
        config = aggregator_config(
            self.tmp_path / f"{client_id}.toml",
            access,
            f"postgresql+psycopg://{self.db.server.user}@{self.db.host}:{self.db.port}/"
            f"{self.db.name}",
            client_id=client_id,
            extra_ingest=extra_ingest,
        )
        env = {
            "FOOTFALL_AGGREGATOR__MQTT__PASSWORD": user.password,
            "FOOTFALL_AGGREGATOR__STORE__PASSWORD": self.db.password,
        }
        proc = AggregatorProcess(config, self.tmp_path / f"{client_id}.log", env)
        self.aggregators.append(proc)
        return proc

    def stored(self) -> int:
        return self.store.count_events()

    def reach(self, n: int, timeout: float = 120) -> None:
        wait_for(lambda: self.stored() >= n, timeout, f"{n:,} events in the store")

    def restart_broker_agent_first(self, aggregator: AggregatorProcess, *, crash: bool) -> None:
        """Stop the broker (SIGKILL or SIGTERM) with the aggregator frozen, start it again, let
        the agent reconnect and publish to a broker nobody subscribes to, then thaw the
        aggregator."""
        assert aggregator.proc is not None
        aggregator.proc.send_signal(signal.SIGSTOP)
        try:
            before = self.agent.connects()
            if crash:
                self.broker.kill()
            else:
                self.broker.stop()
            time.sleep(0.5)  # the agent keeps producing into its outbox meanwhile
            self.broker.start()
            wait_for(lambda: self.agent.connects() > before, 30, "the agent to reconnect first")
            time.sleep(2.0)  # it publishes while no aggregator is subscribed
        finally:
            aggregator.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.agent.close()
        for proc in self.aggregators:
            proc.stop()
        self.store.close()

    def diagnosis(self) -> str:
        logs = [f"--- agent ---\n{self.agent.log_text()[-4000:]}"]
        logs += [f"--- {p.log.name} ---\n{p.log_text()[-3000:]}" for p in self.aggregators]
        return "\n".join(logs)

    def stored_by(self, aggregator: AggregatorProcess) -> int:
        import sqlalchemy as sa

        client_id = aggregator.config.stem
        with self.store.engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM events WHERE source = :source")
            return int(conn.execute(query, {"source": f"mqtt:{client_id}"}).scalar_one())

    def stored_ids(self) -> list[str]:
        import sqlalchemy as sa

        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id FROM events")).all()
        return [str(r[0]) for r in rows]


@pytest.fixture
def chaos(
    tmp_path: Path,
    mosquitto_factory: ServiceFactory[ds.Mosquitto],
    pg_database: PgDatabase,
) -> Iterator[Callable[..., Chaos]]:
    made: list[Chaos] = []

    def make(**kwargs: object) -> Chaos:
        # A long autosave interval: nothing the broker holds survives a crash, the worst case.
        broker = mosquitto_factory(autosave_interval=3600)
        run = Chaos(tmp_path, broker, pg_database, **kwargs)  # type: ignore[arg-type]
        made.append(run)
        return run

    yield make
    for run in made:
        run.close()


def _assert_exactly_once(run: Chaos) -> None:
    ids = run.stored_ids()
    missing = run.produced - set(ids)
    unexpected = set(ids) - run.produced
    assert not missing and not unexpected, (
        f"lost {len(missing):,}, unexpected {len(unexpected):,} of {EVENTS:,}\n{run.diagnosis()}"
    )
    assert len(ids) == len(set(ids)) == EVENTS
    with Outbox(outbox_path(run.data_dir)) as box:
        status = box.status()
    assert status.depth == 0, status


def test_every_event_is_stored_once_through_broker_crashes_restarts_and_kills(
    chaos: Callable[..., Chaos],
) -> None:
    run = chaos(rate=150.0)
    main = run.aggregator(f"agg-main-{random.getrandbits(24):06x}")
    try:
        main.start().wait_connected()
        run.agent.start()

        run.reach(800)
        run.restart_broker_agent_first(main, crash=True)
        run.reach(1_800)
        run.restart_broker_agent_first(main, crash=False)
        run.reach(2_800)
        run.agent.kill9()
        run.agent.start()
        run.reach(3_800)
        main.kill9()
        time.sleep(1.0)  # events meanwhile: queued by the broker for the session, or kept
        main.start().wait_connected()
        run.reach(4_600)
        run.restart_broker_agent_first(main, crash=True)
        run.reach(EVENTS, timeout=180)
        assert run.agent.terminate() == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.diagnosis()}") from None
    _assert_exactly_once(run)
    assert "No matching subscribers" in run.agent.log_text()


def test_a_one_off_aggregator_that_joins_the_group_and_leaves_strands_nothing(
    chaos: Callable[..., Chaos],
) -> None:
    """A second aggregator under a new client id (a manual run, a test deployment) takes a share of
    the group's messages. With a per-run session (``session_expiry_seconds = 0``) the broker
    forgets it the moment it goes, even by SIGKILL, so nothing waits in a queue nobody reads; what
    it had in flight and not committed is gone with it, and comes again from the agent's outbox
    because no receipt named it."""
    run = chaos(rate=300.0)
    main = run.aggregator(f"agg-main-{random.getrandbits(24):06x}")
    one_off = run.aggregator(
        f"agg-once-{random.getrandbits(24):06x}", extra_ingest="session_expiry_seconds = 0"
    )
    try:
        main.start().wait_connected()
        run.agent.start()
        run.reach(500)
        one_off.start().wait_connected()
        # It takes part in the group: its share reaches the store under its own name.
        wait_for(lambda: run.stored_by(one_off) >= 100, 60, "the one-off aggregator's share")
        one_off.kill9()
        run.reach(EVENTS, timeout=120)
        assert run.agent.terminate() == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.diagnosis()}") from None
    _assert_exactly_once(run)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_broker_crash_while_the_aggregator_is_down_loses_nothing(
    chaos: Callable[..., Chaos], protocol: str
) -> None:
    """The broker holds the aggregator's share in its session queue while the aggregator is away,
    and a crash takes that queue (Mosquitto saves it only every ``autosave_interval``). The
    agent's receipts make MQTT 3.1.1, whose PUBACK says nothing about subscribers, as safe."""
    run = chaos(rate=300.0, protocol=protocol)
    main = run.aggregator(f"agg-main-{random.getrandbits(24):06x}")
    try:
        main.start().wait_connected()
        run.agent.start()
        run.reach(1_000)
        main.kill9()
        time.sleep(2.0)  # the broker takes events for the absent aggregator's session
        run.broker.kill()
        run.broker.start()
        main.start().wait_connected()
        run.reach(EVENTS, timeout=120)
        assert run.agent.terminate() == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.diagnosis()}") from None
    _assert_exactly_once(run)

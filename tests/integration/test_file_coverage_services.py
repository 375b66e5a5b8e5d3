"""The coverage of a video file through the fleet path: an agent reads a clip far faster than
real time and publishes to the real Mosquitto; a real aggregator process stores its statuses in
PostgreSQL. The spot is covered for the clip's own span, as in the embedded survey."""

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from aggregator.store import EventStore, tables
from aggregator.store.coverage import Interval
from edge_agent.config import AgentConfig
from edge_agent.running import run_agent
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.sources import VideoFileSource
from models.runtime.classifier import FakeClassifier
from tests.ingest_support import AggregatorProcess, BrokerAccess, aggregator_config, wait_for
from tests.services import MqttNamespace, PgDatabase

FPS = 25.0
FRAMES = 500  # 20 s of footage
FRAME = timedelta(seconds=1 / FPS)
HEARTBEAT = timedelta(seconds=1)


def _clip(path: Path) -> Path:
    """An empty grey corridor with a little noise, small enough to be read in a moment."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (160, 120))
    rng = np.random.default_rng(7)
    for _ in range(FRAMES):
        writer.write(rng.integers(100, 140, (120, 160, 3), dtype=np.uint8))
    writer.release()
    return path


def _agent_config(ns: MqttNamespace, tmp_path: Path) -> AgentConfig:
    user = ns.agents[0]
    broker = ns.broker_settings(user)
    return AgentConfig.model_validate(
        {
            "mode": "face",  # the scripted detector finds nobody; coverage is what is tested
            "site": user.site,
            "spot": user.spot,
            "agent": user.agent,
            "data_dir": tmp_path / "agent",
            "mqtt": broker,
            # One heartbeat per second of footage; the receipts of the aggregator confirm.
            "delivery": {"heartbeat_seconds": HEARTBEAT.total_seconds()},
        }
    )


def _aggregator(ns: MqttNamespace, db: PgDatabase, tmp_path: Path) -> AggregatorProcess:
    broker = ns.broker
    access = BrokerAccess(
        broker.host, broker.tls_port, ns.aggregator.name, ns.aggregator.password, broker.ca_file
    )
    group = f"g{random.getrandbits(32):08x}"
    config = aggregator_config(
        tmp_path / "aggregator.toml",
        access,
        f"postgresql+psycopg://{db.user}@{db.host}:{db.port}/{db.name}",
        client_id=f"{group}-a1",
        group=group,
        prefix=ns.prefix,
    )
    env = {
        "FOOTFALL_AGGREGATOR__MQTT__PASSWORD": ns.aggregator.password,
        "FOOTFALL_AGGREGATOR__STORE__PASSWORD": db.password,
    }
    return AggregatorProcess(config, tmp_path / "aggregator.log", env)


def _offline_stored(store: EventStore) -> Callable[[], bool]:
    t = tables.agent_status_history

    def check() -> bool:
        # The agent's own goodbye carries its counters; the broker's will would not.
        query = sa.select(sa.func.count()).where(
            t.c.state == "offline", t.c.frames_processed.is_not(None)
        )
        with store.engine.connect() as conn:
            return bool(conn.execute(query).scalar_one())

    return check


@pytest.mark.parametrize(
    "filmed",
    [
        pytest.param(lambda: datetime(2025, 3, 4, 9, 30, tzinfo=UTC), id="filmed-long-ago"),
        # The default of ``footfall-agent run`` on a file: its first frame is now, so footage
        # read faster than real time runs ahead of the aggregator's clock.
        pytest.param(lambda: datetime.now(UTC), id="first-frame-now"),
    ],
)
def test_a_file_read_faster_than_real_time_is_covered_for_its_footage(
    filmed: Callable[[], datetime],
    mqtt_namespace: MqttNamespace,
    pg_database: PgDatabase,
    tmp_path: Path,
) -> None:
    aggregator = _aggregator(mqtt_namespace, pg_database, tmp_path).start()
    store = EventStore.open(pg_database.url)
    try:
        aggregator.wait_connected()
        config = _agent_config(mqtt_namespace, tmp_path)
        start = filmed()
        source = VideoFileSource(_clip(tmp_path / "corridor.avi"), start)
        began = time.monotonic()
        report = run_agent(
            config, source, FakeDetector([]), FakeClassifier(), stop=threading.Event()
        )
        read_seconds = time.monotonic() - began
        assert report.stopped_cleanly and report.empty
        assert source.frames_read == FRAMES
        wait_for(_offline_stored(store), 20, "the agent's offline status in the store")

        site = config.site
        got = store.coverage_intervals(
            site,
            start - timedelta(hours=1),
            start + timedelta(hours=1),
            heartbeat_interval=HEARTBEAT,
            gap_multiple=3.0,
        )
        ((a, b),) = got[config.spot]
        footage: Interval = (start, start + FRAMES * FRAME)
        # Timestamps travel at millisecond precision: within a frame of the clip's span.
        assert abs(a - footage[0]) < FRAME and abs(b - footage[1]) < FRAME, (
            got,
            footage,
            f"read in {read_seconds:.1f} s",
        )
        t = tables.agent_status_history
        with store.engine.connect() as conn:
            beats = conn.execute(
                sa.select(t.c.sent_at).where(t.c.channel == "heartbeat").order_by(t.c.sent_at)
            ).scalars()
            offsets = [round((s - start).total_seconds()) for s in beats]
        # One heartbeat per second of footage, from its first frame to its end.
        assert offsets == list(range(21))
    finally:
        store.close()
        aggregator.stop()

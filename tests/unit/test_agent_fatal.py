"""A sender or uploader that cannot go on takes the agent down: the producer is stopped, the other
loop drains, nothing accepted is lost, and the run ends with one line (exit 1 in the CLI)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent import AgentError, Delivery
from edge_agent.config import AgentConfig
from edge_agent.delivery.outbox import Outbox, outbox_path
from edge_agent.delivery.preflight import SetupError
from edge_agent.delivery.sender import LinkState
from edge_agent.running import run_agent, run_until_stopped
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.sinks import EventSink
from edge_agent.vision.sources import SourceCondition, TimedFrame
from footfall.connections import BrokerSettings, ObjectStoreSettings
from footfall.contract import SourceState
from footfall.mqtt_link import BrokerLink
from footfall.objectstore import MemoryObjectStore
from models.runtime.classifier import FakeClassifier
from tests.delivery_support import synthetic_events
from tests.fake_broker import FakeBroker

LINE = "mqtt.password_file /etc/footfall-agent/mqtt.password: cannot read it: No such file"


def _config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        site="site-a",
        spot="spot-1",
        agent="agent-1",
        mode="face",  # scripted face detections
        data_dir=tmp_path / "data",
        mqtt=BrokerSettings(host="fake", reconnect_min_seconds=0.01, reconnect_max_seconds=0.02),
        s3=ObjectStoreSettings(bucket="crops", access_key_id="AK", secret_access_key="SK"),
        delivery={"shutdown_drain_seconds": 2.0, "crop_retry_min_seconds": 0.01},
    )


class _FileGoesMissing:
    """Links to ``broker`` until ``missing`` is set; then building one fails as a password
    file that was deleted does."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.missing = threading.Event()

    def __call__(self) -> BrokerLink:
        if self.missing.is_set():
            raise SetupError(LINE)
        return self.broker.link()


def test_a_sender_that_cannot_go_on_stops_the_producer_and_ends_the_run(tmp_path: Path) -> None:
    config = _config(tmp_path)
    broker = FakeBroker()
    links = _FileGoesMissing(broker)
    store = MemoryObjectStore()
    items = list(synthetic_events(400, seed=5, address=config.address, crop_bytes=500))
    produced: list[str] = []
    stopped_by: list[str] = []
    delivery = Delivery(config, links=links, store=store)

    def produce(sink: EventSink, stop: threading.Event) -> None:
        for n, (event, crop) in enumerate(items):
            if stop.is_set():
                stopped_by.append("stop event")
                return
            sink.emit(event, crop)
            produced.append(str(event.event_id))
            if n == 100:
                # The file is deleted, then the connection drops: the next attempt must fail.
                links.missing.set()
                broker.cut()
            time.sleep(0.005)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        run_until_stopped(delivery, produce)
    assert str(caught.value) == LINE
    assert stopped_by == ["stop event"] and len(produced) < len(items)
    assert time.monotonic() - started < 10
    assert delivery.sender is not None
    stats = delivery.sender.stats()
    assert stats.state is LinkState.FAILED and stats.connect_failures >= 1

    # Nothing accepted is lost: what the broker did not get waits in the outbox, and the
    # uploader, which could go on, drained every crop before the run ended.
    with Outbox(outbox_path(config.data_dir)) as box:
        unsent = {u.event_id for u in box.next_unsent(10**6)}
        assert box.crops_pending() == 0 and box.counters().events_accepted == len(produced)
    published = {p.payload for p in broker.on_topic(delivery.sender.events_topic)}
    assert unsent
    assert set(produced) == unsent | {str(e.event_id) for e, _ in items if e.to_json() in published}
    assert len(store.objects) == len(produced)


class _EndlessScene:
    """A live camera showing an empty scene until stopped."""

    live = True
    reconnects = 0
    frame_count = None

    def __init__(self) -> None:
        self.closed = False

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        image = np.full((120, 160, 3), 128, np.uint8)
        index = 0
        while not stop.wait(0.01):
            yield TimedFrame(image, datetime.now(UTC), index)
            index += 1

    def condition(self) -> SourceCondition:
        return SourceCondition(SourceState.DELIVERING)

    def close(self) -> None:
        self.closed = True


def test_run_agent_stops_the_camera_when_the_sender_cannot_go_on(tmp_path: Path) -> None:
    config = _config(tmp_path)
    broker = FakeBroker()
    links = _FileGoesMissing(broker)
    links.missing.set()
    source = _EndlessScene()
    stop = threading.Event()
    with pytest.raises(AgentError) as caught:
        run_agent(
            config,
            source,
            FakeDetector([]),
            FakeClassifier(),
            links=links,
            store=MemoryObjectStore(),
            stop=stop,
        )
    assert str(caught.value) == LINE
    assert source.closed and stop.is_set()


def test_a_missing_s3_secret_file_stops_the_delivery_before_it_opens_the_outbox(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path).model_copy(
        update={
            "mqtt": None,
            "s3": ObjectStoreSettings(
                bucket="crops", access_key_id="AK", secret_access_key_file=tmp_path / "s3.secret"
            ),
        }
    )
    with pytest.raises(AgentError) as caught:
        Delivery(config)
    assert str(caught.value) == (
        f"s3.secret_access_key_file {tmp_path / 's3.secret'}: cannot read it: "
        "No such file or directory"
    )
    assert not outbox_path(config.data_dir).exists()

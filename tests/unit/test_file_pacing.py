"""A video file standing in for a camera: ``--realtime`` paces it by its timestamps, ``--loop``
restarts it with its stream time running on, and a looping agent's status messages follow that
time. The pacing runs on a fake clock: what is checked is when each frame may go, not how long
the test took."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import AgentConfig
from edge_agent.delivery.stream_clock import StreamClock
from edge_agent.running import footage_clock, run_agent
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.sources import VideoFileSource, open_source
from footfall.connections import BrokerSettings
from footfall.contract import AgentState, AgentStatus, SourceState, decode
from models.runtime.classifier import FakeClassifier
from tests.fake_broker import FakeBroker

START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
FPS = 10.0
FRAMES = 6


def _clip(path: Path, frames: int = FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i % 250, np.uint8))
    writer.release()
    return path


class FakeTime:
    """A monotonic clock that only ``sleep`` moves (plus what a test adds as work)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float, _stop: threading.Event) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_realtime_hands_out_frame_i_no_earlier_than_i_over_fps(tmp_path: Path) -> None:
    clock = FakeTime()
    source = VideoFileSource(
        _clip(tmp_path / "c.avi"),
        START,
        realtime=True,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    handed: list[float] = []
    for frame in source.frames(threading.Event()):
        handed.append(round(clock.now - 100.0, 6))
        if frame.index == 2:
            clock.now += 0.25  # processing frame 2 took longer than two frames' time
    source.close()
    # Frames 0-2 on time; 3 and 4 are late after the slow frame and go at once (the schedule is
    # from the first frame, so the delay is caught up rather than added); 5 waits for 0.5 s.
    assert handed == [0.0, 0.1, 0.2, 0.45, 0.45, 0.5]
    assert clock.sleeps == [0.1, 0.1, 0.05]
    assert all(t >= i / FPS for i, t in enumerate(handed))


def test_without_realtime_a_file_never_waits(tmp_path: Path) -> None:
    clock = FakeTime()
    source = VideoFileSource(
        _clip(tmp_path / "c.avi"), START, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert len(list(source.frames(threading.Event()))) == FRAMES
    assert clock.sleeps == []
    assert source.condition().state is SourceState.ENDED


def test_realtime_stops_while_waiting(tmp_path: Path) -> None:
    stop = threading.Event()

    def sleep(seconds: float, event: threading.Event) -> None:
        event.set()  # SIGTERM while waiting for the next frame's time

    source = VideoFileSource(
        _clip(tmp_path / "c.avi"), START, realtime=True, sleep=sleep, monotonic=lambda: 0.0
    )
    assert [f.index for f in source.frames(stop)] == [0]
    assert source.condition().state is SourceState.ENDED


def test_loop_restarts_the_file_with_time_and_index_running_on(tmp_path: Path) -> None:
    source = VideoFileSource(_clip(tmp_path / "c.avi"), START, loop=True)
    assert source.frame_count is None  # no end to make progress towards
    stop = threading.Event()
    frames = []
    for frame in source.frames(stop):
        frames.append(frame)
        if len(frames) == 3 * FRAMES + 2:
            stop.set()
    source.close()
    assert source.passes == 4
    assert [f.index for f in frames] == list(range(3 * FRAMES + 2))
    # The next pass starts where the previous one ended: start + its frames / fps.
    assert [f.timestamp for f in frames] == [
        START + timedelta(seconds=i / FPS) for i in range(3 * FRAMES + 2)
    ]
    # The same picture again, one pass later.
    assert np.array_equal(frames[FRAMES].image, frames[0].image)
    assert source.shortfall() is None


def test_loop_and_realtime_together_keep_the_schedule_across_passes(tmp_path: Path) -> None:
    clock = FakeTime()
    source = VideoFileSource(
        _clip(tmp_path / "c.avi"),
        START,
        realtime=True,
        loop=True,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    stop = threading.Event()
    handed = []
    for frame in source.frames(stop):
        handed.append(round(clock.now - 100.0, 6))
        if frame.index == 2 * FRAMES:
            stop.set()
    assert handed == [round(i / FPS, 6) for i in range(2 * FRAMES + 1)]


def test_a_looping_file_s_footage_clock_keeps_increasing(tmp_path: Path) -> None:
    source = VideoFileSource(_clip(tmp_path / "c.avi"), START, loop=True)
    clock = footage_clock(source)
    assert isinstance(clock, StreamClock)
    stop = threading.Event()
    reached = []
    for frame in source.frames(stop):
        clock.on_frame(frame)
        reached.append(clock.now())
        if frame.index == 2 * FRAMES + 1:
            stop.set()
    assert reached == sorted(reached) and len(set(reached)) == len(reached)
    assert reached[-1] == START + timedelta(seconds=(2 * FRAMES + 2) / FPS)


def test_open_source_passes_realtime_and_loop_to_a_file(tmp_path: Path) -> None:
    source = open_source(str(_clip(tmp_path / "c.avi")), start=START, realtime=True, loop=True)
    assert isinstance(source, VideoFileSource) and source.realtime and source.loop
    source.close()


def test_a_looping_agent_s_heartbeats_follow_the_footage_across_passes(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "c.avi", frames=12)
    config = AgentConfig.model_validate(
        {
            "mode": "face",
            "site": "site-a",
            "spot": "spot-1",
            "agent": "agent-1",
            "data_dir": tmp_path / "data",
            "mqtt": BrokerSettings(host="fake", reconnect_min_seconds=0.1),
            # One heartbeat per 0.5 s of footage, passes of 1.2 s.
            "delivery": {"heartbeat_seconds": 0.5, "shutdown_drain_seconds": 2},
        }
    )
    broker = FakeBroker()
    source = VideoFileSource(clip, START, loop=True)
    stop = threading.Event()

    def stop_after_three_passes() -> None:
        while source.frames_read < 36 and not stop.is_set():
            time.sleep(0.01)
        stop.set()

    watcher = threading.Thread(target=stop_after_three_passes, daemon=True)
    watcher.start()
    run_agent(config, source, FakeDetector([]), FakeClassifier(), links=broker.link, stop=stop)
    watcher.join(5)
    beats = [
        decode(AgentStatus, p.payload) for p in broker.published if p.topic.endswith("/heartbeat")
    ]
    sent = [b.sent_at for b in beats]
    assert sent == sorted(sent) and len(set(sent)) == len(sent)
    end = START + timedelta(seconds=source.frames_read / FPS)
    assert source.frames_read >= 36 and source.passes >= 3 and sent[-1] == end
    # Every 0.5 s of footage over the passes, never back to the clip's start.
    assert sent[:7] == [START + timedelta(seconds=0.5 * i) for i in range(7)]
    statuses = [decode(AgentStatus, p.payload) for p in broker.published if "/status" in p.topic]
    assert statuses[-1].state is AgentState.OFFLINE and statuses[-1].sent_at == end


@pytest.mark.parametrize("flag", ["--realtime", "--loop"])
def test_run_refuses_realtime_and_loop_for_a_camera(tmp_path: Path, flag: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'site = "s"\nspot = "p"\nagent = "a"\ndata_dir = "{tmp_path / "data"}"\n'
        '[source]\nurl = "rtsp://127.0.0.1:1/stream"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["run", "--config", str(config), flag])
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("--realtime and --loop are for a video file; source.url is a camera or a stream")
    )
    assert not (tmp_path / "data").exists()

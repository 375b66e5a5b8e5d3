"""Frame sources, the bounded queue, and the runner loop around the pipeline."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.runner import run
from edge_agent.vision.sinks import ListSink
from edge_agent.vision.sources import (
    BoundedFrameQueue,
    LiveSource,
    QueueClosedError,
    SourceCondition,
    SourceError,
    TimedFrame,
    VideoFileSource,
    backoff_delays,
    open_source,
)
from footfall.contract import Direction, SourceState
from footfall.contract.topics import AgentAddress
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import Walker, face_image, timeline

START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def _write_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_file_frames_are_timed_from_the_start_time(tmp_path: Path) -> None:
    clip = _write_clip(
        tmp_path / "c.avi", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    )
    source = VideoFileSource(clip, START)
    frames = list(source.frames(threading.Event()))
    source.close()
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.timestamp for f in frames] == [START + timedelta(seconds=i / 10) for i in range(5)]
    assert frames[0].image.shape == (48, 64, 3)
    assert source.frame_count == 5 and not source.live


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"this is not a video" * 50, "not a video file OpenCV can open"),
        (b"", "not a video file OpenCV can open"),
    ],
    ids=["missing", "garbage", "empty"],
)
def test_unreadable_files_are_one_clear_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        VideoFileSource(path, START)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("start", "when"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00+00:00"),
        # Starts inside the window, but its last frame would be stamped in 2100.
        (
            datetime(2099, 12, 31, 23, 59, 59, 800000, tzinfo=UTC),
            "2099-12-31T23:59:59.800000+00:00",
        ),
    ],
)
def test_a_clip_whose_frames_no_event_could_carry_is_refused_when_opened(
    tmp_path: Path, start: datetime, when: str
) -> None:
    clip = _write_clip(tmp_path / "c.avi", [np.zeros((48, 64, 3), np.uint8)] * 5)
    with pytest.raises(SourceError) as info:
        VideoFileSource(clip, start)
    assert str(info.value) == (
        f"{clip}: filmed from {when}, outside the times events can have "
        "(2000-01-01 to 2099-12-31 (UTC))"
    )


def test_directory_is_not_a_clip(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a file"):
        VideoFileSource(tmp_path, START)


class FakeCapture:
    """Opens or not, then yields ``frames`` frames and fails."""

    def __init__(self, opened: bool, frames: int) -> None:
        self.opened, self.left, self.released = opened, frames, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_live_source_reconnects_with_backoff_and_counts() -> None:
    # Opens with 2 frames, then fails to open twice, then opens with 3 frames, then is stopped.
    plan = [
        FakeCapture(True, 2),
        FakeCapture(False, 0),
        FakeCapture(False, 0),
        FakeCapture(True, 3),
    ]
    made: list[FakeCapture] = []
    delays: list[float] = []
    stop = threading.Event()

    def factory(target: str | int) -> FakeCapture:
        cap = plan.pop(0) if plan else FakeCapture(False, 0)
        made.append(cap)
        if not plan and len(made) > 4:
            stop.set()
        return cap

    source = LiveSource(
        "rtsp://cam",
        reconnect_min_seconds=0.001,
        reconnect_max_seconds=0.004,
        capture_factory=factory,
        clock=lambda: START,
        on_reconnect=lambda n, d: delays.append(d),
    )
    frames = list(source.frames(stop))
    assert len(frames) == 5
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    # lost after 2 frames (1 ms), two failed opens (2 ms, 4 ms), then frames reset the backoff.
    assert delays[:3] == [0.001, 0.002, 0.004]
    assert delays[3] == 0.001
    assert source.reconnects == len(delays)
    assert all(c.released for c in made)


def test_live_source_condition_follows_its_frames_and_keeps_the_last_error() -> None:
    # Cannot be opened, then delivers 2 frames and stops, then opens but gives nothing.
    plan = [FakeCapture(False, 0), FakeCapture(True, 2), FakeCapture(True, 0)]
    stop = threading.Event()
    reconnecting: list[SourceCondition] = []
    source: LiveSource

    def factory(_target: str | int) -> FakeCapture:
        if not plan:
            stop.set()
            return FakeCapture(False, 0)
        return plan.pop(0)

    source = LiveSource(
        "rtsp://user:secret@cam/stream",
        reconnect_min_seconds=0.001,
        reconnect_max_seconds=0.001,
        capture_factory=factory,
        clock=lambda: START,
        on_reconnect=lambda _n, _d: reconnecting.append(source.condition()),
    )
    assert source.condition() == SourceCondition(SourceState.STARTING)
    delivering = [source.condition() for _frame in source.frames(stop)]
    where = "video source rtsp://user:***@cam/stream"
    assert delivering == [SourceCondition(SourceState.DELIVERING, f"{where} cannot be opened")] * 2
    assert reconnecting == [
        SourceCondition(SourceState.RECONNECTING, f"{where} {why}")
        for why in (
            "cannot be opened",
            "stopped delivering frames",
            "opened but gave no frame",
            "cannot be opened",
        )
    ]
    assert source.condition() == SourceCondition(SourceState.ENDED, f"{where} cannot be opened")


def test_live_source_reports_reconnecting_with_the_reason_while_it_cannot_open() -> None:
    stop = threading.Event()
    conditions: list[SourceCondition] = []
    source: LiveSource

    def on_reconnect(count: int, _delay: float) -> None:
        conditions.append(source.condition())
        if count == 2:
            stop.set()

    source = LiveSource(
        "rtsp://127.0.0.1:1",
        reconnect_min_seconds=0.001,
        reconnect_max_seconds=0.001,
        capture_factory=lambda _t: FakeCapture(False, 0),
        on_reconnect=on_reconnect,
    )
    assert list(source.frames(stop)) == []
    error = "video source rtsp://127.0.0.1:1 cannot be opened"
    assert conditions == [SourceCondition(SourceState.RECONNECTING, error)] * 2
    assert source.condition() == SourceCondition(SourceState.ENDED, error)


def test_backoff_doubles_up_to_the_cap() -> None:
    gen = backoff_delays(1.0, 5.0)
    assert [next(gen) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_open_source_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_source("0"), LiveSource)
    assert isinstance(open_source("rtsp://10.0.0.2/stream"), LiveSource)
    with pytest.raises(ValueError, match="needs the start time"):
        open_source(str(tmp_path / "x.mp4"))
    with pytest.raises(SourceError, match="file not found"):
        open_source(str(tmp_path / "x.mp4"), start=START)


def test_queue_drops_oldest_and_counts() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(2, drop_oldest=True)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and q.put_count == 5
    q.close()
    assert [q.get(0), q.get(0)] == [3, 4]
    with pytest.raises(QueueClosedError):
        q.get(0)


def test_blocking_queue_waits_for_room_and_stops() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(1, drop_oldest=False)
    assert q.put(1)
    stop = threading.Event()
    stop.set()
    assert q.put(2, stop) is False  # full, and told to stop while waiting
    assert q.dropped == 0
    got: list[int | None] = []
    consumer = threading.Timer(0.05, lambda: got.append(q.get(1)))
    consumer.start()
    assert q.put(3, threading.Event())  # waits until the consumer took 1
    consumer.join()
    assert got == [1] and q.get(0) == 3
    assert q.get(0.01) is None


class ListSource:
    """Frames from a list; optionally fails after them."""

    def __init__(self, frames: list[TimedFrame], fail: Exception | None = None) -> None:
        self._frames, self._fail, self.closed = frames, fail, False

    @property
    def live(self) -> bool:
        return False

    @property
    def reconnects(self) -> int:
        return 0

    @property
    def frame_count(self) -> int | None:
        return len(self._frames)

    def frames(self, stop: threading.Event):  # type: ignore[no-untyped-def]
        yield from self._frames
        if self._fail is not None:
            raise self._fail

    def condition(self) -> SourceCondition:
        return SourceCondition(SourceState.DELIVERING)

    def close(self) -> None:
        self.closed = True


def _scene(fail: Exception | None = None) -> tuple[ListSource, Pipeline]:
    walker = Walker("a", (40, 240), (200, 0), 0.0, 2.8, size=70)
    script = timeline([walker], fps=25, duration=2.8)
    frames = [
        TimedFrame(face_image(640, 480, s.detections.boxes), START + timedelta(seconds=s.t), k)
        for k, s in enumerate(script)
    ]
    pipe = Pipeline(
        detector=FakeDetector([s.detections for s in script]),
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
    )
    return ListSource(frames, fail), pipe


def test_runner_processes_every_frame_and_emits_at_end_of_stream() -> None:
    source, pipe = _scene()
    sink = ListSink()
    seen: list[int] = []
    result = run(source, pipe, sink, on_frame=lambda f, _: seen.append(f.index))
    assert result.frames_processed == result.frames_in == 71
    assert result.frames_dropped == 0 and not result.stopped
    assert seen == list(range(71))
    assert [e.direction for e in sink.events] == [Direction.IN]
    assert result.events == 1 and source.closed and not sink.closed


def test_runner_reraises_capture_errors_after_emitting_people_in_view() -> None:
    source, pipe = _scene(fail=OSError("camera unplugged"))
    sink = ListSink()
    with pytest.raises(OSError, match="camera unplugged"):
        run(source, pipe, sink)
    assert len(sink.events) == 1  # the person seen before the failure is not lost
    assert source.closed

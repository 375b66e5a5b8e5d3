"""Where frames come from: video files (stream time = the clip's start time + the frame's
position), and live RTSP/HTTP URLs or camera indices (wall-clock time) that reconnect with
backoff; and the bounded queue between capture and processing.

A source yields :class:`TimedFrame` records and says what it is doing in :meth:`condition`
(the heartbeat and ``/readyz`` report it). A file that cannot be read is one
:class:`SourceError` with a one-line reason, raised when the source is opened.

A file can stand in for a camera when testing a deployment: ``realtime`` paces it by its
timestamps, ``loop`` restarts it at its end with the stream time running on.
"""

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.settings import video_file
from footfall.contract import SourceState
from footfall.contract.types import EARLIEST_TIMESTAMP, END_OF_TIMESTAMPS, timestamp_window_text
from footfall.redact import redact

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
T = TypeVar("T")


class SourceError(Exception):
    """A source that cannot deliver frames; the message is one line naming it and why."""


@dataclass(frozen=True)
class SourceCondition:
    """What a source is doing now, and the last error it met opening or reading (kept after it
    recovers, so the fleet still sees why it reconnected)."""

    state: SourceState
    error: str | None = None


class _ConditionCell:
    """A :class:`SourceCondition` written by the capture thread, read by the heartbeat's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = SourceCondition(SourceState.STARTING)

    def set(self, state: SourceState, error: str | None = None) -> None:
        with self._lock:
            self._value = SourceCondition(state, error or self._value.error)

    def get(self) -> SourceCondition:
        with self._lock:
            return self._value


@dataclass(frozen=True)
class TimedFrame:
    image: U8  # H x W x 3, BGR
    timestamp: datetime  # time-zone aware
    index: int  # position in the source (frames read since it was opened)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the sources use (a fake implements it in tests)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, U8 | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[str | int], Capture]


def _open_capture(target: str | int) -> Capture:
    cap: Capture = cv2.VideoCapture(target)  # type: ignore[assignment]
    return cap


class FrameSource(Protocol):
    @property
    def live(self) -> bool:
        """Live sources drop the oldest frame when processing falls behind; files never drop."""
        ...

    @property
    def reconnects(self) -> int: ...

    @property
    def frame_count(self) -> int | None:
        """Frames expected (files), for progress; None when unknown (live)."""
        ...

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]: ...

    def condition(self) -> SourceCondition: ...

    def close(self) -> None: ...


Sleep = Callable[[float, threading.Event], object]
"""Waits up to the seconds given or until the event is set (``Event.wait``; tests pass a fake)."""


def _wait_on_event(seconds: float, stop: threading.Event) -> object:
    return stop.wait(seconds)


def tolerated_shortfall(expected: int) -> int:
    """Frames a clip may come up short of its container's frame count and still be complete.

    The count is a header value or an estimate from duration x frame rate, and files straight
    from cameras and encoders often decode a frame or two fewer (B-frames reordered at the end,
    an edit list, rounding); the larger of 3 frames and 1 % of the count is that, not damage.
    """
    return max(3, math.ceil(expected * 0.01))


class VideoFileSource:
    """A recorded clip; frame ``i`` is stamped ``start + i / fps``.

    After the frames ran out, :meth:`shortfall` says whether decoding stopped early: a file
    damaged or cut short mid-stream decodes up to the damage and then reads as ended.

    ``realtime``: frame ``i`` is handed out no earlier than ``i / fps`` seconds (of
    ``monotonic``) after the first, as a camera would deliver it; otherwise as fast as it
    decodes. ``loop``: at its end the file is opened again and read anew, its frames stamped on
    from where the previous pass ended (``start`` + frames read so far / fps), so timestamps,
    indices and the footage clock keep increasing; it ends only when stopped (or when a pass
    decodes nothing). ``sleep`` and ``monotonic`` are the pacing's clock (tests pass fakes).
    """

    def __init__(
        self,
        path: Path,
        start: datetime,
        *,
        capture_factory: CaptureFactory = _open_capture,
        realtime: bool = False,
        loop: bool = False,
        sleep: Sleep = _wait_on_event,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be time-zone aware")
        if not path.exists():
            raise SourceError(f"{path}: file not found")
        if not path.is_file():
            raise SourceError(f"{path}: not a file")
        self.path = path
        self.start = start
        self.realtime = realtime
        self.loop = loop
        self._factory = capture_factory
        self._sleep = sleep
        self._monotonic = monotonic
        self._condition = _ConditionCell()
        self._cap = capture_factory(str(path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{path}: not a video file OpenCV can open")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and 0.1 <= fps <= 1000):
            self._cap.release()
            raise SourceError(f"{path}: no usable frame rate ({fps}), so frames cannot be timed")
        self.fps = fps
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._count = int(count) if math.isfinite(count) and count > 0 else None
        end = start + timedelta(seconds=(self._count or 0) / fps)
        if not (start >= EARLIEST_TIMESTAMP and end < END_OF_TIMESTAMPS):
            self._cap.release()
            raise SourceError(
                f"{path}: filmed from {start.isoformat()}, outside the times events can have "
                f"({timestamp_window_text()})"
            )
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{path}: no decodable frames (broken or empty video)")
        self._first: U8 | None = first
        self._index = 0  # frames handed out, over every pass
        self._pass_start = 0  # index of the current pass's first frame
        self._passes = 1
        self._exhausted = False  # the decoder ran out, rather than the caller stopping

    @property
    def live(self) -> bool:
        return False

    @property
    def reconnects(self) -> int:
        return 0

    @property
    def frame_count(self) -> int | None:
        """The container's count; None when looping (no end to make progress towards)."""
        return None if self.loop else self._count

    @property
    def passes(self) -> int:
        """Times the file was started (1 without ``loop``)."""
        return self._passes

    def condition(self) -> SourceCondition:
        return self._condition.get()

    def _next_image(self) -> U8 | None:
        if self._first is not None:
            image, self._first = self._first, None
            return image
        ok, read = self._cap.read()
        if ok and read is not None:
            return read
        if not self.loop or self._index == self._pass_start:
            return None
        # The next pass: opened anew rather than rewound, since seeking is unreliable in
        # many containers; its first frame follows the last one of this pass in stream time.
        self._cap.release()
        self._cap = self._factory(str(self.path))
        ok, read = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or read is None:
            self._condition.set(SourceState.ENDED, f"{self.path}: could not be read again")
            return None
        self._pass_start = self._index
        self._passes += 1
        log.info("%s: pass %d from stream time %+.1f s", self.path, self._passes, self._at())
        return read

    def _at(self) -> float:
        return self._index / self.fps

    def _pace(self, first_wall: float, stop: threading.Event) -> None:
        # Measured from the first frame, not frame to frame, so a slow read is caught up on
        # rather than adding up.
        while not stop.is_set():
            ahead = first_wall + self._at() - self._monotonic()
            if ahead <= 0:
                return
            self._sleep(ahead, stop)

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        first_wall: float | None = None
        try:
            while not stop.is_set():
                image = self._next_image()
                if image is None:
                    self._exhausted = True
                    return
                if self.realtime:
                    if first_wall is None:
                        first_wall = self._monotonic() - self._at()
                    self._pace(first_wall, stop)
                    if stop.is_set():
                        return
                self._condition.set(SourceState.DELIVERING)
                yield TimedFrame(image, self.start + timedelta(seconds=self._at()), self._index)
                self._index += 1
        finally:
            self._condition.set(SourceState.ENDED)

    @property
    def frames_read(self) -> int:
        return self._index

    def shortfall(self) -> str | None:
        """Why the clip ended early (frames read vs the container's count), or None when it was
        read to its end, was stopped by the caller, or has no frame count to judge by. When
        looping, about the last pass."""
        expected = self._count
        if not self._exhausted or expected is None:
            return None
        read = self._index - self._pass_start
        if expected - read <= tolerated_shortfall(expected):
            return None
        return (
            f"{self.path}: decoding stopped after {read} of {expected} frames "
            f"({read / self.fps:.1f} of {expected / self.fps:.1f} s): the file is damaged or "
            "cut short"
        )

    def close(self) -> None:
        self._cap.release()


def backoff_delays(first: float, cap: float) -> Iterator[float]:
    """first, 2*first, 4*first, ... capped at ``cap``."""
    delay = first
    while True:
        yield min(delay, cap)
        delay = min(delay * 2, cap)


class LiveSource:
    """An RTSP/HTTP stream or a camera index, stamped with the wall clock. When it cannot be
    opened or stops delivering frames, it is reopened after a growing delay (reset by the next
    frame read); each reopen is logged and counted in ``reconnects``."""

    def __init__(
        self,
        target: str | int,
        *,
        reconnect_min_seconds: float = 1.0,
        reconnect_max_seconds: float = 30.0,
        capture_factory: CaptureFactory = _open_capture,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_reconnect: Callable[[int, float], None] | None = None,
    ) -> None:
        if not 0 < reconnect_min_seconds <= reconnect_max_seconds:
            raise ValueError(
                "need 0 < reconnect_min_seconds <= reconnect_max_seconds, got "
                f"{reconnect_min_seconds} and {reconnect_max_seconds}"
            )
        self.target = target
        self.reconnect_min = reconnect_min_seconds
        self.reconnect_max = reconnect_max_seconds
        self._factory = capture_factory
        self._clock = clock
        self._on_reconnect = on_reconnect
        self._reconnects = 0
        self._cap: Capture | None = None
        self._condition = _ConditionCell()

    @property
    def live(self) -> bool:
        return True

    def condition(self) -> SourceCondition:
        return self._condition.get()

    @property
    def reconnects(self) -> int:
        return self._reconnects

    @property
    def frame_count(self) -> int | None:
        return None

    def _wait(self, delays: Iterator[float], stop: threading.Event, why: str) -> None:
        delay = next(delays)
        self._reconnects += 1
        # An RTSP URL usually carries the camera's password.
        where = redact(self.target) if isinstance(self.target, str) else self.target
        self._condition.set(SourceState.RECONNECTING, f"video source {where} {why}")
        log.warning("video source %s %s; reopening in %.1f s", where, why, delay)
        if self._on_reconnect is not None:
            self._on_reconnect(self._reconnects, delay)
        stop.wait(delay)

    def frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        try:
            yield from self._frames(stop)
        finally:
            self._condition.set(SourceState.ENDED)

    def _frames(self, stop: threading.Event) -> Iterator[TimedFrame]:
        index = 0
        delays = backoff_delays(self.reconnect_min, self.reconnect_max)
        while not stop.is_set():
            cap = self._factory(self.target)
            self._cap = cap
            if not cap.isOpened():
                cap.release()
                self._wait(delays, stop, "cannot be opened")
                continue
            read_any = False
            while not stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    break
                if not read_any:
                    read_any = True
                    self._condition.set(SourceState.DELIVERING)
                delays = backoff_delays(self.reconnect_min, self.reconnect_max)
                yield TimedFrame(image, self._clock(), index)
                index += 1
            cap.release()
            self._cap = None
            if not stop.is_set():
                why = "stopped delivering frames" if read_any else "opened but gave no frame"
                self._wait(delays, stop, why)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


def is_live_spec(spec: str) -> bool:
    """Whether ``source.url`` names a camera index or a stream rather than a video file."""
    return spec.isdigit() or spec.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https")


def open_source(
    spec: str,
    *,
    start: datetime | None = None,
    reconnect_min_seconds: float = 1.0,
    reconnect_max_seconds: float = 30.0,
    realtime: bool = False,
    loop: bool = False,
) -> FrameSource:
    """A camera index ("0"), an ``rtsp://`` / ``http(s)://`` URL, or a video file path (which
    needs ``start``, the wall-clock time of its first frame). ``realtime`` and ``loop`` are for
    files (see :class:`VideoFileSource`); a live source is paced by its camera and never ends."""
    path = video_file(spec)
    if path is None:
        return LiveSource(
            int(spec) if spec.isdigit() else spec,
            reconnect_min_seconds=reconnect_min_seconds,
            reconnect_max_seconds=reconnect_max_seconds,
        )
    if start is None:
        raise ValueError(f"{spec}: a video file needs the start time of its first frame")
    return VideoFileSource(path, start, realtime=realtime, loop=loop)


class QueueClosedError(Exception):
    """The producer is done and every item has been taken."""


class BoundedFrameQueue(Generic[T]):
    """A queue of at most ``capacity`` items between one producer and one consumer.

    When full, ``put`` either drops the oldest item (live sources: the newest frame matters
    most) and counts it in ``dropped``, or waits for room (files: every frame is processed).
    """

    def __init__(self, capacity: int, *, drop_oldest: bool) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self.put_count = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, stop: threading.Event | None = None) -> bool:
        """Add ``item``; returns False if it was not added because ``stop`` was set while
        waiting for room."""
        with self._cond:
            if self._closed:
                raise ValueError("put on a closed queue")
            while len(self._items) >= self.capacity:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None after ``timeout`` seconds without one; raises
        :class:`QueueClosedError` once the producer closed the queue and it is empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._closed:
                raise QueueClosedError
            return None

    def close(self) -> None:
        """No more puts; the consumer drains what is left, then gets :class:`QueueClosedError`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

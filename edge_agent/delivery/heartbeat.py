"""The agent's status messages: the retained online/offline status, the will and the periodic
heartbeat, all :class:`~footfall.contract.AgentStatus` records built from live counters.

Their ``sent_at`` is on the clock of the agent's events: the wall clock for a live source, the
footage's time for a recorded clip (:mod:`edge_agent.delivery.stream_clock`), whose heartbeats
then follow the footage rather than the wall clock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from edge_agent.delivery.outbox import OutboxCounters
from edge_agent.delivery.stream_clock import StreamClock, StreamHeartbeats
from footfall import __version__
from footfall.contract import (
    SCHEMA_VERSION,
    AgentState,
    AgentStats,
    AgentStatus,
    ModelRef,
    SourceState,
)
from footfall.contract.topics import AgentAddress

_NOTE_MAX = 300


@dataclass(frozen=True)
class FrameCounters:
    """What the capture loop reports; all zero while no pipeline runs (e.g. ``deliver``)."""

    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    fps: float = 0.0
    source_reconnects: int = 0
    source_state: SourceState | None = None  # None: no source (e.g. ``deliver``)
    source_error: str | None = None
    seconds_since_frame: float | None = None  # None: no frame processed yet


class SourceReport(Protocol):
    """What a video source says about itself (the vision side's ``SourceCondition``)."""

    @property
    def state(self) -> SourceState: ...

    @property
    def error(self) -> str | None: ...


class OutboxGauges(Protocol):
    def counters(self) -> OutboxCounters: ...

    def depth(self) -> int: ...

    def crops_pending(self) -> int: ...


class StatusSource(Protocol):
    def build(
        self, state: AgentState, *, with_stats: bool, at: datetime | None = None
    ) -> AgentStatus:
        """``at``: the message's ``sent_at`` when it is not now (a heartbeat due earlier)."""
        ...

    def stream_heartbeats(self, interval: float) -> list[datetime] | None:
        """The heartbeats due on the footage's clock, when the source is a recorded clip; None
        for a live source, whose heartbeats the sender times by the wall clock."""
        ...


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    # The contract refuses control characters and notes over 300 characters.
    flat = " ".join(text.split())
    return flat if len(flat) <= _NOTE_MAX else flat[: _NOTE_MAX - 1] + "…"


class StatusBuilder:
    """Builds the agent's :class:`AgentStatus`. Counters are since this process started (the
    outbox's lifetime counters minus their value at start); gauges are current.

    ``events_sent`` and ``errors`` are filled in by the wiring once the sender and uploader
    exist: a callable for the number of events acknowledged, and callables for the latest
    error of each part (the first one set wins).

    ``stream_clock``: given when the source is a recorded clip; ``sent_at`` is then the time the
    pipeline reached in the footage instead of ``wall_clock`` (uptime and ``started_at`` stay on
    the wall clock: they are about the process).
    """

    def __init__(
        self,
        address: AgentAddress,
        outbox: OutboxGauges,
        *,
        config_version: str | None,
        models: Sequence[ModelRef] = (),
        frames: Callable[[], FrameCounters] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        stream_clock: StreamClock | None = None,
    ) -> None:
        self.address = address
        self._outbox = outbox
        self._config_version = config_version
        self._models = list(models)
        self._frames = frames or FrameCounters
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._stream_clock = stream_clock
        self._stream_beats = StreamHeartbeats(stream_clock) if stream_clock is not None else None
        self.started_at = wall_clock()
        self._started = monotonic()
        self._baseline = outbox.counters()
        self.events_sent: Callable[[], int] = lambda: 0
        self.errors: list[Callable[[], str | None]] = []

    @property
    def config_version(self) -> str | None:
        return self._config_version

    @config_version.setter
    def config_version(self, version: str | None) -> None:
        # One reference assignment; the sender thread reads it when it builds a heartbeat.
        self._config_version = version

    def last_error(self, frames: FrameCounters | None = None) -> str | None:
        """The source's error while it is reconnecting (nothing else matters while no frame
        arrives), else the first error of the delivery parts."""
        frames = frames or self._frames()
        if frames.source_state is SourceState.RECONNECTING and frames.source_error:
            return frames.source_error
        for source in self.errors:
            error = source()
            if error:
                return error
        return None

    def frame_counters(self) -> FrameCounters:
        return self._frames()

    def stats(self, frames: FrameCounters | None = None) -> AgentStats:
        counters = self._outbox.counters()
        base = self._baseline
        frames = frames or self._frames()
        return AgentStats(
            started_at=self.started_at,
            uptime_seconds=max(0.0, self._monotonic() - self._started),
            frames_in=frames.frames_in,
            frames_processed=frames.frames_processed,
            frames_dropped=frames.frames_dropped,
            fps=frames.fps,
            events_emitted=(counters.events_accepted - base.events_accepted)
            + (counters.events_duplicate - base.events_duplicate),
            events_sent=self.events_sent(),
            outbox_depth=self._outbox.depth(),
            crops_pending=self._outbox.crops_pending(),
            crops_dropped=counters.crops_dropped - base.crops_dropped,
            source_reconnects=frames.source_reconnects,
            source_state=frames.source_state,
            source_error=_clip(frames.source_error),
        )

    def stream_heartbeats(self, interval: float) -> list[datetime] | None:
        if self._stream_beats is None:
            return None
        return self._stream_beats.due(interval)

    def now(self) -> datetime:
        """The time on the clock of this agent's events."""
        if self._stream_clock is not None:
            return self._stream_clock.now()
        return self._wall_clock()

    def build(
        self, state: AgentState, *, with_stats: bool, at: datetime | None = None
    ) -> AgentStatus:
        """``with_stats=False`` is for the will, which the broker sends later on our behalf."""
        frames = self._frames() if with_stats else None  # one reading for stats and error
        return AgentStatus(
            schema_version=SCHEMA_VERSION,
            site=self.address.site,
            spot=self.address.spot,
            agent=self.address.agent,
            state=state,
            sent_at=self.now() if at is None else at,
            software_version=__version__,
            config_version=self._config_version,
            models=self._models,
            stats=self.stats(frames) if with_stats else None,
            last_error=_clip(self.last_error(frames)) if with_stats else None,
        )


class _Indexed(Protocol):
    @property
    def index(self) -> int: ...


class FrameMeter:
    """Live frame counters for the heartbeat, fed by the runner's per-frame callback.

    ``frames_in`` is taken from the processed frame's position in the source, so frames the
    bounded queue dropped before processing are counted as read and as dropped without the
    runner having to expose its queue.

    ``source``: what the video source says about itself (state and last error); without it the
    counters carry no source state.
    """

    def __init__(
        self,
        *,
        source_reconnects: Callable[[], int] = lambda: 0,
        source: Callable[[], SourceReport] | None = None,
        window_seconds: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reconnects = source_reconnects
        self._source = source
        self._window = window_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._processed = 0
        self._read = 0
        self._index_base = 0
        self._last_index = -1
        self._recent: deque[float] = deque()
        self._last_frame: float | None = None

    def on_frame(self, frame: _Indexed, _finished: object = None) -> None:
        now = self._monotonic()
        with self._lock:
            if frame.index <= self._last_index:
                # The source was reopened and counts from zero again.
                self._index_base = self._read
            self._last_index = frame.index
            self._read = self._index_base + frame.index + 1
            self._processed += 1
            self._last_frame = now
            self._recent.append(now)
            while self._recent and self._recent[0] < now - self._window:
                self._recent.popleft()

    def snapshot(self) -> FrameCounters:
        now = self._monotonic()
        with self._lock:
            while self._recent and self._recent[0] < now - self._window:
                self._recent.popleft()
            fps = len(self._recent) / self._window
            last = self._last_frame
            counters = FrameCounters(
                frames_in=self._read,
                frames_processed=self._processed,
                frames_dropped=max(0, self._read - self._processed),
                fps=round(fps, 2),
                source_reconnects=self._reconnects(),
                seconds_since_frame=None if last is None else max(0.0, now - last),
            )
        if self._source is None:
            return counters
        report = self._source()
        return replace(counters, source_state=report.state, source_error=report.error)

"""Status and heartbeat records built from the live counters."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.delivery.heartbeat import FrameCounters, FrameMeter, StatusBuilder
from edge_agent.delivery.outbox import OutboxCounters
from edge_agent.metrics import source_problem
from footfall import __version__
from footfall.contract import AgentState, AgentStatus, ModelRef, ModelRole, SourceState, decode
from footfall.contract.topics import AgentAddress

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@dataclass
class Gauges:
    now: OutboxCounters = field(default_factory=OutboxCounters)
    unsent: int = 0
    crops: int = 0

    def counters(self) -> OutboxCounters:
        return self.now

    def depth(self) -> int:
        return self.unsent

    def crops_pending(self) -> int:
        return self.crops


def test_heartbeat_counts_since_start_and_gauges_now() -> None:
    gauges = Gauges(OutboxCounters(events_accepted=100, crops_dropped=7))
    ticks = iter([10.0, 70.0])
    builder = StatusBuilder(
        ADDRESS,
        gauges,
        config_version="2026-05-01.1",
        models=[ModelRef(role=ModelRole.DETECTOR, name="yunet", version="2023mar")],
        frames=lambda: FrameCounters(1500, 1490, 10, 24.8, 1),
        wall_clock=lambda: START,
        monotonic=lambda: next(ticks),
    )
    builder.events_sent = lambda: 38
    gauges.now = OutboxCounters(events_accepted=140, events_duplicate=2, crops_dropped=9)
    gauges.unsent, gauges.crops = 4, 3

    status = builder.build(AgentState.ONLINE, with_stats=True)
    assert decode(AgentStatus, status.to_json()) == status
    assert (status.software_version, status.config_version) == (__version__, "2026-05-01.1")
    stats = status.stats
    assert stats is not None
    assert stats.uptime_seconds == 60.0 and stats.started_at == START
    assert (stats.frames_in, stats.frames_processed, stats.frames_dropped) == (1500, 1490, 10)
    assert (stats.fps, stats.source_reconnects) == (24.8, 1)
    assert (stats.events_emitted, stats.events_sent) == (42, 38)
    assert (stats.outbox_depth, stats.crops_pending, stats.crops_dropped) == (4, 3, 2)


def test_will_has_no_stats_and_errors_are_made_contract_safe() -> None:
    builder = StatusBuilder(ADDRESS, Gauges(), config_version=None, wall_clock=lambda: START)
    builder.errors = [lambda: None, lambda: "TLS failed:\n" + "x" * 400, lambda: "later"]
    will = builder.build(AgentState.OFFLINE, with_stats=False)
    assert (will.stats, will.last_error, will.state) == (None, None, AgentState.OFFLINE)
    beat = builder.build(AgentState.ONLINE, with_stats=True)
    assert beat.last_error is not None
    assert beat.last_error.startswith("TLS failed: xxx") and len(beat.last_error) == 300
    assert beat.sent_at == START and beat.stats is not None
    assert beat.stats.started_at + timedelta(0) == START


@dataclass
class Frame:
    index: int


def test_frame_meter_counts_reads_drops_reopens_and_recent_fps() -> None:
    now = {"t": 0.0}
    meter = FrameMeter(source_reconnects=lambda: 1, window_seconds=10.0, monotonic=lambda: now["t"])
    for index in (0, 1, 2, 5, 6):  # frames 3 and 4 were dropped by the queue
        now["t"] += 0.5
        meter.on_frame(Frame(index))
    for index in (0, 1):  # the source was reopened
        now["t"] += 0.5
        meter.on_frame(Frame(index))
    counters = meter.snapshot()
    assert (counters.frames_in, counters.frames_processed, counters.frames_dropped) == (9, 7, 2)
    assert counters.source_reconnects == 1
    assert counters.fps == 0.7  # 7 frames in the last 10 s
    now["t"] += 30
    assert meter.snapshot().fps == 0.0


@dataclass(frozen=True)
class Report:
    state: SourceState
    error: str | None = None


def test_heartbeat_carries_the_source_state_and_a_reconnecting_source_error_comes_first() -> None:
    now = {"t": 0.0}
    report = {"r": Report(SourceState.STARTING)}
    meter = FrameMeter(source=lambda: report["r"], monotonic=lambda: now["t"])
    builder = StatusBuilder(
        ADDRESS, Gauges(), config_version=None, frames=meter.snapshot, wall_clock=lambda: START
    )
    builder.errors = [lambda: "MQTT refused"]
    beat = builder.build(AgentState.ONLINE, with_stats=True)
    assert beat.stats is not None and beat.stats.source_state is SourceState.STARTING
    assert beat.last_error == "MQTT refused"
    error = "video source rtsp://127.0.0.1:1 cannot be opened"
    report["r"] = Report(SourceState.RECONNECTING, error)
    beat = builder.build(AgentState.ONLINE, with_stats=True)
    assert beat.stats is not None
    assert (beat.stats.source_state, beat.stats.source_error) == (SourceState.RECONNECTING, error)
    assert beat.last_error == error
    assert decode(AgentStatus, beat.to_json()) == beat
    # Recovered: the error is still reported as the source's last, but no longer the agent's.
    report["r"] = Report(SourceState.DELIVERING, error)
    beat = builder.build(AgentState.ONLINE, with_stats=True)
    assert beat.stats is not None and beat.stats.source_error == error
    assert beat.last_error == "MQTT refused"


def test_without_a_source_the_heartbeat_has_no_source_state() -> None:
    builder = StatusBuilder(ADDRESS, Gauges(), config_version=None, wall_clock=lambda: START)
    beat = builder.build(AgentState.ONLINE, with_stats=True)
    assert beat.stats is not None
    assert (beat.stats.source_state, beat.stats.source_error) == (None, None)
    assert b"source_state" in beat.to_json()


@pytest.mark.parametrize(
    ("counters", "problem"),
    [
        (FrameCounters(), None),
        (FrameCounters(source_state=SourceState.STARTING), "video source starting: no frame yet"),
        (
            FrameCounters(source_state=SourceState.RECONNECTING, source_error="x cannot be opened"),
            "video source reconnecting: x cannot be opened",
        ),
        (FrameCounters(source_state=SourceState.ENDED), "video source ended"),
        (FrameCounters(source_state=SourceState.DELIVERING, seconds_since_frame=1.0), None),
        (
            FrameCounters(source_state=SourceState.DELIVERING, seconds_since_frame=31.0),
            "no frame from the video source for 31 s",
        ),
    ],
)
def test_readiness_of_the_source(counters: FrameCounters, problem: str | None) -> None:
    assert source_problem(counters) == problem


def test_frame_meter_says_how_long_ago_the_last_frame_was() -> None:
    now = {"t": 5.0}
    meter = FrameMeter(monotonic=lambda: now["t"])
    assert meter.snapshot().seconds_since_frame is None
    meter.on_frame(Frame(0))
    now["t"] = 12.5
    assert meter.snapshot().seconds_since_frame == 7.5

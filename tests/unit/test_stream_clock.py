"""The footage's clock of an agent reading a recorded clip: the time its status messages carry
and the heartbeats it calls for, alone, in the status builder and through the sender."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import Synchronous
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.heartbeat import StatusBuilder
from edge_agent.delivery.outbox import Outbox, OutboxCounters
from edge_agent.delivery.sender import EventSender
from edge_agent.delivery.stream_clock import StreamClock, StreamHeartbeats
from footfall.contract import AgentState, AgentStatus, decode
from footfall.contract.topics import AgentAddress, Channel
from footfall.mqtt_link import LinkError
from tests.delivery_support import wait_for
from tests.fake_broker import FakeBroker

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
PREFIX = "footfall/v1"
START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  # filmed long before the test runs
FPS = 25.0
WALL = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Frame:
    timestamp: datetime


def frame(i: int) -> Frame:
    return Frame(START + timedelta(seconds=i / FPS))


def feed(clock: StreamClock, frames: range) -> None:
    for i in frames:
        clock.on_frame(frame(i))


def seconds(times: list[datetime]) -> list[float]:
    return [round((t - START).total_seconds(), 6) for t in times]


def test_the_clock_reads_the_start_then_the_end_of_the_latest_frame() -> None:
    clock = StreamClock(START, 1 / FPS)
    assert clock.read() == (START, False)
    feed(clock, range(1))
    assert clock.now() == START + timedelta(seconds=1 / FPS)
    feed(clock, range(1, 225))  # 9 s of footage
    clock.on_frame(frame(3))  # an out-of-order frame does not move it back
    clock.finish()
    assert clock.read() == (START + timedelta(seconds=9), True)


@pytest.mark.parametrize(
    ("start", "frame_seconds", "message"),
    [
        (datetime(2024, 5, 1, 8, 0), 0.04, "start must be time-zone aware"),
        (START, 0.0, "frame_seconds must be > 0, got 0.0"),
    ],
)
def test_the_clock_refuses_bad_arguments(
    start: datetime, frame_seconds: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StreamClock(start, frame_seconds)


def test_heartbeats_at_the_start_every_interval_of_footage_and_at_its_end() -> None:
    clock = StreamClock(START, 1 / FPS)
    beats = StreamHeartbeats(clock)
    assert seconds(beats.due(2.0)) == [0.0]  # before the first frame: the clip's start
    assert beats.due(2.0) == []
    feed(clock, range(49))  # up to 1.96 s
    assert beats.due(2.0) == []
    feed(clock, range(49, 50))  # 2.0 s
    assert seconds(beats.due(2.0)) == [2.0]
    feed(clock, range(50, 180))  # 7.2 s, all processed before the next check
    assert seconds(beats.due(2.0)) == [4.0, 6.0]
    feed(clock, range(180, 225))  # 9.0 s
    assert seconds(beats.due(2.0)) == [8.0]
    clock.finish()
    assert seconds(beats.due(2.0)) == [9.0]
    assert beats.due(2.0) == []


def test_a_long_backlog_goes_out_over_several_checks_and_the_interval_may_change() -> None:
    clock = StreamClock(START, 1 / FPS)
    beats = StreamHeartbeats(clock)
    feed(clock, range(0, 25 * 1000))  # 1000 s of footage before the first check
    clock.finish()
    handed: list[datetime] = []
    while due := beats.due(1.0):
        assert len(due) <= 200
        handed += due
    assert seconds(handed) == [float(s) for s in range(1001)]
    # A new interval (remote configuration) applies from the last heartbeat on.
    clock2 = StreamClock(START, 1 / FPS)
    beats2 = StreamHeartbeats(clock2)
    feed(clock2, range(0, 250))
    assert seconds(beats2.due(4.0)) == [0.0, 4.0, 8.0]
    assert seconds(beats2.due(1.0)) == [9.0, 10.0]
    with pytest.raises(ValueError, match="interval must be > 0, got 0"):
        beats2.due(0)


class Gauges:
    def counters(self) -> OutboxCounters:
        return OutboxCounters()

    def depth(self) -> int:
        return 0

    def crops_pending(self) -> int:
        return 0


def test_a_live_source_keeps_the_wall_clock_and_the_senders_heartbeats() -> None:
    builder = StatusBuilder(ADDRESS, Gauges(), config_version=None, wall_clock=lambda: WALL)
    assert builder.build(AgentState.ONLINE, with_stats=True).sent_at == WALL
    assert builder.stream_heartbeats(60.0) is None


def test_a_file_sources_statuses_carry_the_footages_time() -> None:
    clock = StreamClock(START, 1 / FPS)
    builder = StatusBuilder(
        ADDRESS, Gauges(), config_version=None, wall_clock=lambda: WALL, stream_clock=clock
    )
    assert builder.build(AgentState.ONLINE, with_stats=True).sent_at == START
    feed(clock, range(100))
    status = builder.build(AgentState.OFFLINE, with_stats=True)
    assert status.sent_at == START + timedelta(seconds=4)
    assert status.stats is not None and status.stats.started_at == WALL  # the process: wall
    due = builder.stream_heartbeats(1.0)
    assert due is not None and seconds(due) == [0.0, 1.0, 2.0, 3.0, 4.0]
    at = due[2]
    assert builder.build(AgentState.ONLINE, with_stats=True, at=at).sent_at == at
    assert builder.build(AgentState.OFFLINE, with_stats=False).sent_at == START + timedelta(
        seconds=4
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", synchronous=Synchronous.NORMAL)
    yield box
    box.close()


def _sender(outbox: Outbox, broker: FakeBroker, clock: StreamClock) -> EventSender:
    builder = StatusBuilder(ADDRESS, outbox, config_version="7", stream_clock=clock)
    return EventSender(
        outbox,
        broker.link,
        address=ADDRESS,
        topic_prefix=PREFIX,
        backoff=Backoff(0.005, 0.02),
        status=builder,
        heartbeat_seconds=1.0,  # of footage, which the tests feed far faster than real time
        idle_poll_seconds=0.005,
    )


def _times(broker: FakeBroker, channel: Channel) -> list[tuple[str, float]]:
    topic = ADDRESS.topic(PREFIX, channel)
    out = []
    for p in broker.on_topic(topic):
        status = decode(AgentStatus, p.payload)
        out.append((status.state.value, round((status.sent_at - START).total_seconds(), 6)))
    return out


def test_the_sender_publishes_heartbeats_per_second_of_footage_not_of_wall_clock(
    outbox: Outbox,
) -> None:
    """20 s of footage processed in a moment: 21 heartbeats a second of footage apart, online at
    the clip's start, offline at its end; none on the wall clock's cadence."""
    clock = StreamClock(START, 1 / FPS)
    broker = FakeBroker()
    sender = _sender(outbox, broker, clock)
    sender.start()
    try:
        wait_for(lambda: bool(_times(broker, Channel.HEARTBEAT)), "the first heartbeat")
        feed(clock, range(0, 500))
        clock.finish()
        wait_for(lambda: len(_times(broker, Channel.HEARTBEAT)) == 21, "21 heartbeats")
    finally:
        assert sender.stop(1.0)
    assert _times(broker, Channel.HEARTBEAT) == [("online", float(s)) for s in range(21)]
    assert _times(broker, Channel.STATUS) == [("online", 0.0), ("offline", 20.0)]


def test_heartbeats_the_footage_passed_during_an_outage_go_out_after_it(outbox: Outbox) -> None:
    clock = StreamClock(START, 1 / FPS)
    broker = FakeBroker(refuse=LinkError("the broker is down"))
    sender = _sender(outbox, broker, clock)
    sender.start()
    try:
        wait_for(lambda: broker.connect_attempts >= 2, "a refused connection")
        feed(clock, range(0, 125))  # 5 s of footage read while nobody hears
        broker.refuse = None
        wait_for(lambda: len(_times(broker, Channel.HEARTBEAT)) == 6, "the missed heartbeats")
    finally:
        assert sender.stop(1.0)
    assert _times(broker, Channel.STATUS) == [("online", 5.0), ("offline", 5.0)]
    assert _times(broker, Channel.HEARTBEAT) == [("online", float(s)) for s in range(6)]

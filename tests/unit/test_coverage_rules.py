"""The coverage rules (aggregator.store.coverage) on status histories of live agents and of agents
reading a recorded clip faster than real time, whose messages carry the footage's time."""

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.store.coverage import Interval, StatusPoint, agent_intervals, spot_intervals
from footfall.contract import AgentState

S = timedelta(seconds=1)
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
GAP = 3 * S
ON, OFF = AgentState.ONLINE, AgentState.OFFLINE


def p(state: AgentState, sent: float, received: float) -> StatusPoint:
    return StatusPoint("spot-1", "agent-1", state, T0 + sent * S, T0 + received * S)


def iv(a: float, b: float) -> Interval:
    return (T0 + a * S, T0 + b * S)


def file_read_fast(clip_seconds: int, speed: float, lag: float = 0.01) -> list[StatusPoint]:
    """An agent reading a clip filmed from T0, started at T0 on the aggregator's clock, ``speed``
    times faster than real time: online at the start, a heartbeat per second of footage and one
    at the end, offline at the end."""
    points = [p(ON, 0, lag), p(ON, 0, lag)]
    points += [p(ON, s, s / speed + lag) for s in range(1, clip_seconds + 1)]
    end = clip_seconds / speed + lag
    return [*points, p(OFF, clip_seconds, end + 0.5)]


@pytest.mark.parametrize("speed", [0.5, 1.0, 3.2, 10.0, 100.0])
def test_a_clip_is_covered_for_its_span_at_any_reading_speed(speed: float) -> None:
    assert agent_intervals(file_read_fast(9, speed), GAP) == [iv(0, 9)]


def test_a_clip_filmed_long_ago_is_covered_for_its_span() -> None:
    days = 800 * 24 * 3600.0  # received 800 days after filming
    points = [p(ON, s, days + s / 10) for s in range(31)] + [p(OFF, 30.5, days + 4)]
    assert agent_intervals(points, GAP) == [iv(0, 30.5)]


def test_the_will_of_a_file_agent_ends_what_it_had_sent_when_the_connection_died() -> None:
    """Read at 10x: the connection dies after 12 s of footage (1.2 s of wall clock), the will
    (sent_at of the connection: the clip's start) comes at 1.5 s; the agent is back at 2.5 s
    with the footage at 25 s and sends what it read meanwhile."""
    points = [p(ON, 0, 0.0)] + [p(ON, s, s / 10) for s in range(1, 13)]
    points.append(p(OFF, 0, 1.5))
    points += [p(ON, 25, 2.5)] + [p(ON, s, 2.5 + s / 100) for s in range(13, 31)]
    assert agent_intervals(points, GAP) == [iv(0, 12), iv(13, 30)]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        # A goodbye within the gap after the last heartbeat ends the interval at its time ...
        ([p(ON, 0, 0), p(ON, 1, 1), p(OFF, 2.5, 2.5)], [iv(0, 2.5)]),
        # ... a later one, or the will with its stale time, at the last heartbeat.
        ([p(ON, 0, 0), p(ON, 1, 1), p(OFF, 9, 9)], [iv(0, 1)]),
        ([p(ON, 0, 0), p(ON, 1, 1), p(ON, 2, 2), p(OFF, 0, 6)], [iv(0, 2)]),
        # A silence longer than the gap ends the interval at the last heartbeat heard.
        ([p(ON, 0, 0), p(ON, 2, 2), p(ON, 10, 10), p(ON, 12, 12)], [iv(0, 2), iv(10, 12)]),
        # After an offline status, the next online point starts a new interval.
        (
            [p(ON, 0, 0), p(ON, 2, 2), p(OFF, 2, 2.1), p(ON, 3, 3), p(ON, 5, 5)],
            [iv(0, 2), iv(3, 5)],
        ),
        # An offline status received before anything online ends nothing.
        ([p(OFF, 0, 0), p(ON, 1, 1), p(ON, 3, 3)], [iv(1, 3)]),
        # A live agent whose clock runs 5 minutes ahead of the aggregator's: its will still
        # ends the interval at its last heartbeat, not 5 minutes before it.
        ([p(ON, 300 + s, s) for s in range(0, 10, 2)] + [p(OFF, 300, 11)], [iv(300, 308)]),
    ],
)
def test_rules(points: list[StatusPoint], expected: list[Interval]) -> None:
    assert agent_intervals(points, GAP) == expected
    assert agent_intervals(reversed(points), GAP) == expected  # any order


def test_agents_of_a_spot_are_merged_and_clipped() -> None:
    other = [
        StatusPoint("spot-1", "agent-2", ON, T0 + s * S, T0 + s * S / 10) for s in range(8, 16)
    ]
    far = [StatusPoint("spot-2", "agent-3", ON, T0 + s * S, T0) for s in (0, 1)]
    got = spot_intervals(file_read_fast(9, 10.0) + other + far, GAP, T0 + S, T0 + 14 * S)
    assert got == {"spot-1": [iv(1, 14)], "spot-2": []}

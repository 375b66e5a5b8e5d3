"""When was a spot watched? Online intervals from an agent's status and heartbeat history.

Rules (conservative: a spot is never reported covered for a time nobody vouched for):

- An ``online`` status or a heartbeat at ``sent_at`` (agent clock, the same clock as the events'
  timestamps) starts an interval, or extends the open one if it comes at most ``gap`` after the
  previous one (``gap`` = heartbeat interval x a configured multiple).
- A longer silence ends the interval at the last heartbeat heard.
- An ``offline`` status ends the interval: at its ``sent_at`` when that lies after the last
  heartbeat (an agent saying goodbye), otherwise at the last heartbeat. The broker's will message
  carries the ``sent_at`` of the connection it belongs to, which is stale, so it is ordered by when
  the aggregator received it instead.
- Intervals of the agents of one spot are merged, then clipped to the requested range.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from footfall.contract import AgentState

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class StatusPoint:
    spot: str
    agent: str
    state: AgentState
    sent_at: datetime
    received_at: datetime

    @property
    def order_key(self) -> datetime:
        return self.received_at if self.state is AgentState.OFFLINE else self.sent_at


def agent_intervals(points: Iterable[StatusPoint], gap: timedelta) -> list[Interval]:
    """Online intervals of one agent from its status points (any order)."""
    out: list[Interval] = []
    start: datetime | None = None
    last: datetime | None = None  # sent_at of the latest online point of the open interval
    for point in sorted(points, key=lambda p: p.order_key):
        if point.state is AgentState.ONLINE:
            t = point.sent_at
            if start is not None and last is not None:
                if t - last <= gap:
                    last = t
                    continue
                out.append((start, last))
            start, last = t, t
        elif start is not None and last is not None:
            end = point.sent_at if last < point.sent_at <= last + gap else last
            out.append((start, end))
            start = last = None
    if start is not None and last is not None:
        out.append((start, last))
    return [(a, b) for a, b in out if b > a]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals, sorted; touching intervals become one."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(a, start), min(b, end)) for a, b in intervals if b > start and a < end]


def spot_intervals(
    points: Iterable[StatusPoint], gap: timedelta, start: datetime, end: datetime
) -> dict[str, list[Interval]]:
    """Merged, clipped online intervals per spot. Spots with no coverage map to an empty list
    when they appear in ``points`` at all."""
    by_agent: dict[tuple[str, str], list[StatusPoint]] = defaultdict(list)
    for point in points:
        by_agent[(point.spot, point.agent)].append(point)
    per_spot: dict[str, list[Interval]] = {}
    for (spot, _agent), agent_points in sorted(by_agent.items()):
        per_spot.setdefault(spot, []).extend(agent_intervals(agent_points, gap))
    return {spot: clip(merge(iv), start, end) for spot, iv in per_spot.items()}

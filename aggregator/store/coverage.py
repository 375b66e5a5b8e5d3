"""When was a spot watched? Online intervals from an agent's status and heartbeat history.

Rules (conservative: a spot is never reported covered for a time nobody vouched for):

- ``sent_at`` is on the clock of the agent's events: the wall clock for a live camera or stream,
  the footage's own time for an agent reading a recorded clip (its start + frame position / fps).
  Such an agent sends its online status at the time it reached in the footage, one heartbeat per
  heartbeat interval of footage processed and one at the footage's end, and its offline status
  at that end, however fast it reads the file (see ``edge_agent.delivery.stream_clock``). A clip
  read to its end is thus covered for its span, [first frame, first frame + frames / fps], the
  span the embedded survey reports for it.
- An ``online`` status or a heartbeat at ``sent_at`` starts an interval, or extends the open one
  if it comes at most ``gap`` after the previous one (``gap`` = heartbeat interval x a
  configured multiple).
- A longer silence ends the interval at the last heartbeat heard.
- An ``offline`` status ends the interval that was open when the aggregator received it: the one
  holding the latest (by ``sent_at``) online point received up to then. It ends at the offline's
  ``sent_at`` when that lies after that point, within ``gap`` (an agent saying goodbye),
  otherwise at the point. Offline statuses are placed by when they were received, not by their
  ``sent_at``, because the broker's will carries the ``sent_at`` of the connection it belongs to,
  which is stale, and because an agent reading a file faster than real time is ahead of the
  aggregator's clock: placed by time received, its goodbye would cut its footage short.
  Online points received after the offline one start a new interval.
- Intervals of the agents of one spot are merged, then clipped to the requested range.
"""

from bisect import bisect_right
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


@dataclass(frozen=True, slots=True)
class _Goodbye:
    """An offline status, placed just after the online point it follows (``after``)."""

    after: datetime
    sent_at: datetime


def _goodbyes(online: list[StatusPoint], offline: Iterable[StatusPoint]) -> list[_Goodbye]:
    """Each offline status placed after the latest (by sent_at) online point received up to when
    it was received; one received before any online point ends nothing and is left out."""
    by_arrival = sorted(online, key=lambda p: p.received_at)
    arrivals = [p.received_at for p in by_arrival]
    latest: list[datetime] = []  # latest sent_at among the first i + 1 points received
    for point in by_arrival:
        latest.append(max(latest[-1], point.sent_at) if latest else point.sent_at)
    out: list[_Goodbye] = []
    for point in offline:
        heard = bisect_right(arrivals, point.received_at)
        if heard:
            out.append(_Goodbye(latest[heard - 1], point.sent_at))
    return out


def agent_intervals(points: Iterable[StatusPoint], gap: timedelta) -> list[Interval]:
    """Online intervals of one agent from its status points (any order)."""
    listed = list(points)
    online = [p for p in listed if p.state is AgentState.ONLINE]
    goodbyes = _goodbyes(online, (p for p in listed if p.state is AgentState.OFFLINE))
    # A goodbye comes after the online points sent at the time it follows (0 before 1).
    timeline: list[tuple[datetime, int, _Goodbye | None]] = [(p.sent_at, 0, None) for p in online]
    timeline += [(g.after, 1, g) for g in goodbyes]
    timeline.sort(key=lambda item: (item[0], item[1]))
    out: list[Interval] = []
    start: datetime | None = None
    last: datetime | None = None  # sent_at of the latest online point of the open interval
    for t, _, goodbye in timeline:
        if goodbye is None:
            if start is not None and last is not None:
                if t - last <= gap:
                    last = t
                    continue
                out.append((start, last))
            start, last = t, t
        elif start is not None and last is not None:
            said = goodbye.sent_at
            out.append((start, said if last < said <= last + gap else last))
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

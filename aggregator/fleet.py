"""The fleet at a glance: which agents are alive, from the store's agents table. Pure: rows and
a time in, a health verdict and a table out."""

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from rich.table import Table
from rich.text import Text

from aggregator.store import AgentRow
from footfall.contract import AgentState, SourceState


class Health(StrEnum):
    ONLINE = "online"  # said online and heard from recently, its source delivering
    NO_VIDEO = "NO VIDEO"  # online and heard from, but its video source is reconnecting
    SILENT = "SILENT"  # said online, but nothing heard for longer than the threshold
    OFFLINE = "offline"  # said offline (itself, or the broker through its will)


def health(agent: AgentRow, now: datetime, silent_after: timedelta) -> Health:
    if agent.state is AgentState.OFFLINE:
        return Health.OFFLINE
    if now - agent.last_seen_at > silent_after:
        return Health.SILENT
    if agent.source_state is SourceState.RECONNECTING:
        return Health.NO_VIDEO
    return Health.ONLINE


def silent(agents: Sequence[AgentRow], now: datetime, silent_after: timedelta) -> list[AgentRow]:
    return [a for a in agents if health(a, now, silent_after) is Health.SILENT]


def unhealthy(
    agents: Sequence[AgentRow], now: datetime, silent_after: timedelta
) -> list[tuple[AgentRow, Health]]:
    """Every agent that is not counting now (offline, silent or without video), with why."""
    verdicts = [(a, health(a, now, silent_after)) for a in agents]
    return [(a, v) for a, v in verdicts if v is not Health.ONLINE]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """``"90"``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` -> timedelta. Raises ValueError."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 5m, 2h)")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
    except OverflowError:  # more days than timedelta holds
        raise ValueError(f"{text!r} is longer than any duration that can be used") from None


def ago(delta: timedelta) -> str:
    """A short, human age: ``45s``, ``12m``, ``3h 05m``, ``2d 04h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _number(value: float | int | None, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


_STYLE = {
    Health.ONLINE: "green",
    Health.NO_VIDEO: "bold red",
    Health.SILENT: "bold red",
    Health.OFFLINE: "yellow",
}


def _utc(value: datetime | None) -> str:
    return "-" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


def _source_error(agent: AgentRow) -> str:
    # An agent's own last_error names a reconnecting source's error already; this is for an
    # agent whose heartbeat carried only the source's.
    if agent.source_state is SourceState.RECONNECTING and agent.source_error:
        return agent.source_error
    return ""


def fleet_table(agents: Sequence[AgentRow], now: datetime, silent_after: timedelta) -> Table:
    table = Table(
        "site",
        "spot",
        "agent",
        "health",
        "source",
        "last seen",
        "state since",
        "fps",
        "outbox",
        "crops pending",
        "pending as of",
        "dropped frames",
        "software",
        "config",
        "models",
        "last error",
        title=f"{len(agents)} agents; silent after {ago(silent_after)} without a message",
    )
    # An error names a URL or a path, one long word: folded onto more lines, never cut short.
    table.columns[-1].overflow = "fold"
    for a in agents:
        verdict = health(a, now, silent_after)
        # Every cell is a Text, never a str: rich would read "[...]" in agent-supplied strings
        # (versions, errors) as markup, and malformed markup raises.
        cells = [
            a.site,
            a.spot,
            a.agent,
            verdict.value,
            a.source_state.value if a.source_state is not None else "-",
            f"{ago(now - a.last_seen_at)} ago",
            f"{ago(now - a.state_since)} ago",
            _number(a.fps, "{:.1f}"),
            _number(a.outbox_depth),
            _number(a.crops_pending),
            # The agent's clock (a recorded clip's: its footage time), so a time, not an age.
            _utc(a.pending_at),
            _number(a.frames_dropped),
            a.software_version,
            a.config_version or "-",
            ", ".join(f"{m.name}@{m.version}" for m in a.models) or "-",
            a.last_error or _source_error(a),
        ]
        row = [Text(c) for c in cells]
        row[3].stylize(_STYLE[verdict])
        table.add_row(*row)
    return table

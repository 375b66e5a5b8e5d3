"""The fleet at a glance: which agents are alive, from the store's agents table. Pure: rows and
a time in, a health verdict and a table out."""

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from rich.table import Table
from rich.text import Text

from aggregator.store import AgentRow
from footfall.contract import AgentState


class Health(StrEnum):
    ONLINE = "online"  # said online and heard from recently
    SILENT = "SILENT"  # said online, but nothing heard for longer than the threshold
    OFFLINE = "offline"  # said offline (itself, or the broker through its will)


def health(agent: AgentRow, now: datetime, silent_after: timedelta) -> Health:
    if agent.state is AgentState.OFFLINE:
        return Health.OFFLINE
    if now - agent.last_seen_at > silent_after:
        return Health.SILENT
    return Health.ONLINE


def silent(agents: Sequence[AgentRow], now: datetime, silent_after: timedelta) -> list[AgentRow]:
    return [a for a in agents if health(a, now, silent_after) is Health.SILENT]


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


_STYLE = {Health.ONLINE: "green", Health.SILENT: "bold red", Health.OFFLINE: "yellow"}


def fleet_table(agents: Sequence[AgentRow], now: datetime, silent_after: timedelta) -> Table:
    table = Table(
        "site",
        "spot",
        "agent",
        "health",
        "last seen",
        "state since",
        "fps",
        "outbox",
        "dropped frames",
        "crops pending",
        "software",
        "config",
        "models",
        "last error",
        title=f"{len(agents)} agents; silent after {ago(silent_after)} without a message",
    )
    for a in agents:
        verdict = health(a, now, silent_after)
        # Every cell is a Text, never a str: rich would read "[...]" in agent-supplied strings
        # (versions, errors) as markup, and malformed markup raises.
        cells = [
            a.site,
            a.spot,
            a.agent,
            verdict.value,
            f"{ago(now - a.last_seen_at)} ago",
            f"{ago(now - a.state_since)} ago",
            _number(a.fps, "{:.1f}"),
            _number(a.outbox_depth),
            _number(a.frames_dropped),
            _number(a.crops_pending),
            a.software_version,
            a.config_version or "-",
            ", ".join(f"{m.name}@{m.version}" for m in a.models) or "-",
            a.last_error or "",
        ]
        row = [Text(c) for c in cells]
        row[3].stylize(_STYLE[verdict])
        table.add_row(*row)
    return table

"""Fleet health and its table: pure functions of agent rows and the time."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from aggregator.fleet import (
    Health,
    ago,
    fleet_table,
    health,
    parse_duration,
    silent,
    unhealthy,
)
from aggregator.store import AgentRow
from footfall.contract import AgentState, Channel, SourceState
from footfall.contract.examples import EXAMPLE_MODELS

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _agent(
    agent: str = "cam-1", *, state: AgentState = AgentState.ONLINE, quiet_s: float = 5
) -> AgentRow:
    seen = NOW - timedelta(seconds=quiet_s)
    return AgentRow(
        site="site-a",
        spot="north",
        agent=agent,
        state=state,
        state_since=NOW - timedelta(hours=3),
        first_seen_at=NOW - timedelta(days=2),
        last_seen_at=seen,
        last_sent_at=seen,
        last_channel=Channel.HEARTBEAT,
        software_version="0.1.0",
        config_version="2026-05-01.1",
        models=EXAMPLE_MODELS,
        started_at=None,
        uptime_seconds=None,
        fps=24.93,
        frames_in=None,
        frames_processed=None,
        frames_dropped=12,
        events_emitted=None,
        events_sent=None,
        outbox_depth=3,
        crops_pending=0,
        crops_dropped=None,
        source_reconnects=None,
        last_error=None,
    )


@pytest.mark.parametrize(
    ("state", "quiet_s", "expected"),
    [
        (AgentState.ONLINE, 5, Health.ONLINE),
        (AgentState.ONLINE, 120, Health.ONLINE),
        (AgentState.ONLINE, 121, Health.SILENT),
        (AgentState.OFFLINE, 5, Health.OFFLINE),
        (AgentState.OFFLINE, 10_000, Health.OFFLINE),
    ],
)
def test_health(state: AgentState, quiet_s: float, expected: Health) -> None:
    assert health(_agent(state=state, quiet_s=quiet_s), NOW, timedelta(seconds=120)) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("1.5m", 90), ("2h", 7200), ("1d", 86400), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5s", "5 weeks", "1e3"])
def test_parse_duration_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59, "59s"), (61, "1m"), (3725, "1h 02m"), (90000, "1d 01h")]
)
def test_ago(seconds: int, text: str) -> None:
    assert ago(timedelta(seconds=seconds)) == text


def test_table_shows_every_agent_and_never_reads_agent_text_as_markup() -> None:
    agents = [
        _agent("cam-1"),
        _agent("cam-2", quiet_s=600),
        replace(_agent("cam-3", state=AgentState.OFFLINE), last_error="[/bold] broke [red]"),
    ]
    console = Console(width=250, record=True, color_system=None)
    console.print(fleet_table(agents, NOW, timedelta(seconds=120)))
    text = console.export_text()
    assert "3 agents; silent after 2m without a message" in text
    assert "[/bold] broke [red]" in text
    lines = {line.split("│")[3].strip(): line for line in text.splitlines() if "│ cam-" in line}
    assert "│ online " in lines["cam-1"] and "24.9" in lines["cam-1"] and "5s ago" in lines["cam-1"]
    assert "│ SILENT " in lines["cam-2"] and "10m ago" in lines["cam-2"]
    assert "│ offline " in lines["cam-3"]
    assert "yunet@2023mar, cydral-gender@1, cydral-age@1" in lines["cam-1"]
    assert [a.agent for a in silent(agents, NOW, timedelta(seconds=120))] == ["cam-2"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[\u2502\u2503]", line)]


def test_a_reconnecting_source_is_no_video_with_its_error_and_pending_has_a_time() -> None:
    error = "video source rtsp://127.0.0.1:1 cannot be opened"
    agents = [
        replace(
            _agent("cam-1"),
            source_state=SourceState.DELIVERING,
            pending_at=NOW - timedelta(seconds=5),
        ),
        replace(
            _agent("cam-2", quiet_s=1),
            fps=0.0,
            source_state=SourceState.RECONNECTING,
            source_error=error,
        ),
        # Recovered: the last source error is kept in the record, but it no longer holds.
        replace(_agent("cam-3"), source_state=SourceState.DELIVERING, source_error=error),
    ]
    after = timedelta(seconds=120)
    assert [health(a, NOW, after) for a in agents] == [
        Health.ONLINE,
        Health.NO_VIDEO,
        Health.ONLINE,
    ]
    assert [(a.agent, v) for a, v in unhealthy(agents, NOW, after)] == [("cam-2", Health.NO_VIDEO)]
    console = Console(width=300, record=True, color_system=None)
    console.print(fleet_table(agents, NOW, after))
    text = console.export_text().splitlines()
    header = next(_cells(line) for line in text if " health " in line)
    lines = {_cells(line)[3]: _cells(line) for line in text if "│ cam-" in line}
    row = {name: dict(zip(header, cells, strict=True)) for name, cells in lines.items()}
    assert row["cam-1"]["health"] == "online" and row["cam-1"]["source"] == "delivering"
    assert row["cam-1"]["pending as of"] == "2026-05-01 11:59:55Z"
    assert row["cam-1"]["crops pending"] == "0" and row["cam-1"]["last error"] == ""
    assert row["cam-2"]["health"] == "NO VIDEO" and row["cam-2"]["source"] == "reconnecting"
    assert row["cam-2"]["last error"] == error and row["cam-2"]["pending as of"] == "-"
    assert row["cam-3"]["last error"] == ""

"""The About sheet: site, period, time zone, software and model versions, agents, counts."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from openpyxl.styles import Alignment
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.cells import DATETIME_FORMAT, HEADER_FONT, header, print_setup, put
from aggregator.report.excel_text import wrapped_lines
from aggregator.report.period import ReportPeriod
from aggregator.report.summary import SpotSummary
from aggregator.report.tally import SiteTally
from footfall import __version__


def write_about(
    title: str,
    ws: Worksheet,
    site_id: str,
    site_name: str | None,
    period: ReportPeriod,
    generated: datetime,
    tally: SiteTally,
    summaries: list[SpotSummary],
    agents: Sequence[Any],
    dead_letters: int,
    empty_reason: str | None,
    partial_until: datetime | None = None,
) -> None:
    rows: list[tuple[str, object, str | None]] = [
        ("Site", site_id, None),
        ("Site name", site_name or site_id, None),
        ("Period", period.describe(), None),
        (
            "Period start (local)",
            period.start_utc.astimezone(period.tz).replace(tzinfo=None),
            DATETIME_FORMAT,
        ),
        (
            "Period end (local)",
            period.end_utc.astimezone(period.tz).replace(tzinfo=None),
            DATETIME_FORMAT,
        ),
        ("Time zone", period.tz.key, None),
        ("Times in this workbook", f"local time of the site ({period.tz.key})", None),
        ("Generated at (UTC)", generated.astimezone(UTC).replace(tzinfo=None), DATETIME_FORMAT),
        ("Report software version", __version__, None),
        ("Spots", len(summaries), None),
        ("Events (people)", tally.events, None),
        ("Dead letters in period", dead_letters, None),
    ]
    if empty_reason:
        rows.append(("No data", empty_reason, None))
    if partial_until is not None:
        rows.append(("Partial day", partial_note(partial_until, period), None))
    calibrations = [
        f"{sm.spot}: " + "; ".join(c for c in (sm.gender_calibration, sm.age_calibration) if c)
        for sm in summaries
        if sm.gender_calibration or sm.age_calibration
    ]
    rows.append(
        (
            "Share calibrations",
            " | ".join(calibrations) or "none: shares are plain counts",
            None,
        )
    )
    models = sorted({item for text in tally.models for item in _model_items(text)})
    rows.append(("Models in the events", "; ".join(models) or "none recorded", None))
    header(ws, ["Item", "Value"], [26, 60])
    r = 2
    for key, value, fmt in rows:
        put(ws, r, 1, key)
        put(ws, r, 2, value, fmt)
        if isinstance(value, str):
            ws.row_dimensions[r].height = 15 * wrapped_lines(value, 60)
        r += 1
    r += 1
    agent_headers = [
        "Agent",
        "Spot",
        "Last status sent (UTC, agent clock)",
        "State",
        "Software",
        "Config",
        "Models",
    ]
    for c, h in enumerate(agent_headers, start=1):
        put(ws, r, c, h)
        ws.cell(r, c).font = HEADER_FONT
    for a in agents:
        r += 1
        last_seen = a.last_seen.astimezone(UTC).replace(tzinfo=None) if a.last_seen else None
        for c, value in enumerate(
            [a.agent, a.spot, last_seen, a.state, a.software_version, a.config_version, a.models],
            start=1,
        ):
            put(ws, r, c, value, DATETIME_FORMAT if c == 3 else None)
    for col, width in zip("CDEFG", (24, 10, 12, 14, 50), strict=True):
        ws.column_dimensions[col].width = width
    head = r - len(agents)
    for c in range(1, len(agent_headers) + 1):
        ws.cell(head, c).alignment = Alignment(wrap_text=True, vertical="top")
    ws.row_dimensions[head].height = 32
    for row in ws.iter_rows(min_row=2, max_row=head - 2, min_col=2, max_col=2):
        row[0].alignment = Alignment(horizontal="left", vertical="top", wrap_text=True)
    ws.freeze_panes = "A2"
    print_setup(ws, title)


def _model_items(models_json: str) -> list[str]:
    """``["age: cydral-age 1", ...]`` from an event's models column (its JSON text)."""
    try:
        items = json.loads(models_json)
        return [f"{m['role']}: {m['name']} {m['version']}" for m in items]
    except (ValueError, TypeError, KeyError):
        return [models_json]


def partial_note(until: datetime, period: ReportPeriod) -> str:
    local = until.astimezone(period.tz)
    return (
        f"the period was not over when this workbook was made: data up to {local:%Y-%m-%d %H:%M}"
        " local time only"
    )

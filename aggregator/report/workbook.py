"""Building one site's workbook for one period.

Sheets, in order: Summary (one row per spot, ranked), Charts (native Excel charts and their data),
one sheet per spot (person list with frozen header and autofilter, and the hour x gender x age
table to its right), About (site, period, time zone, versions, agents, counts, notes).

Past Excel's 1,048,576 rows, a spot's person list continues on sheets named "<spot> (2)", "<spot>
(3)", ...; nothing is dropped and the Summary counts every person regardless.
"""

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import (
    Column,
    PersonListWriter,
    Styles,
    column_letter,
    render_cells,
    write_sheet,
)
from aggregator.report.excel_text import SheetNames, is_formula_like, xml_text
from aggregator.report.package import save_with_streamed_sheets
from aggregator.report.period import ReportPeriod
from aggregator.report.source import ReportSource
from aggregator.report.summary import AGE_GROUP_LABELS, SpotSummary, summarize
from aggregator.report.tally import AGE_BANDS, SiteTally
from footfall import __version__

log = logging.getLogger(__name__)

DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
PERCENT_FORMAT = "0.0%"
DECIMAL_FORMAT = "0.0"
QUALITY_FORMAT = "0.00"
HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
HEADER_FONT = Font(bold=True)

PERSON_COLUMNS: tuple[Column, ...] = (
    Column("Event id", "event_id", "text", 38),
    Column("Local time", "_local", "datetime", 20, DATETIME_FORMAT),
    Column("Direction", "direction", "text", 10),
    Column("Entry side", "entry_side", "text", 10),
    Column("Exit side", "exit_side", "text", 10),
    Column("Gender", "gender", "text", 9),
    Column("Gender confidence", "gender_confidence", "number", 11, PERCENT_FORMAT, nullable=True),
    Column("Age group", "age_group", "text", 10),
    Column(
        "Age estimate (years)", "age_years", "number", 11, DECIMAL_FORMAT, decimals=1, nullable=True
    ),
    Column("Dwell (s)", "dwell_seconds", "number", 9, DECIMAL_FORMAT, decimals=1),
    Column("Face quality", "face_quality", "number", 9, QUALITY_FORMAT, nullable=True),
    Column("Agent", "agent", "text", 14),
    Column("Track", "track_id", "integer", 8),
    Column("Crop", "crop_key", "link", 60, nullable=True),
    Column("Note", "crop_note", "free_text", 30, nullable=True),
)
GENDER_TITLES = {"female": "Women", "male": "Men", "unknown": "Gender unknown"}


@dataclass(frozen=True)
class SiteReportInfo:
    id: str
    name: str | None
    timezone: str


@dataclass(frozen=True)
class ReportOptions:
    batch_size: int = 50_000
    crop_link_base: str | None = None  # e.g. "crops/" (a local folder) or an https base URL
    generated_at: datetime | None = None
    tmpdir: Path | None = None
    max_rows_per_sheet: int = 1_048_575  # data rows; one more row is the header


@dataclass
class WorkbookResult:
    path: Path
    site: str
    period: ReportPeriod
    people: int
    spots: list[SpotSummary]
    sheets: list[str] = field(default_factory=list)
    dead_letters: int = 0
    empty_reason: str | None = None


def build_site_workbook(
    source: ReportSource,
    site: SiteReportInfo,
    period: ReportPeriod,
    out_path: Path,
    options: ReportOptions | None = None,
) -> WorkbookResult:
    """Read the site's events for ``period`` from ``source`` and write the workbook."""
    options = options or ReportOptions()
    generated = options.generated_at or datetime.now(UTC)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = options.tmpdir or out_path.parent
    with tempfile.TemporaryDirectory(prefix=".report-", dir=tmp_root) as work:
        workdir = Path(work)
        wb = Workbook()
        styles = _register_styles(wb)
        tally = SiteTally(period)
        slots = period.slot_labels()
        writers: dict[str, PersonListWriter] = {}
        try:
            for frame in source.iter_event_frames(
                site.id, period.start_utc, period.end_utc, options.batch_size
            ):
                inside = tally.add(frame)
                if inside.empty:
                    continue
                inside = inside.assign(_local=period.to_local_naive(inside["first_seen"]))
                for spot, part in inside.groupby("spot", sort=False):
                    writer = writers.get(str(spot))
                    if writer is None:
                        writer = PersonListWriter(
                            workdir, len(slots) + 1, options.max_rows_per_sheet
                        )
                        writers[str(spot)] = writer
                    writer.append(
                        render_cells(part, PERSON_COLUMNS, styles, options.crop_link_base)
                    )
            coverage = source.coverage_intervals(site.id, period.start_utc, period.end_utc)
            agents = source.agents(site.id)
            dead = source.count_dead_letters(site.id, period.start_utc, period.end_utc)
            summaries = summarize(tally, coverage, {a.spot for a in agents})
            empty_reason = (
                _empty_reason(tally, summaries, coverage, dead) if tally.events == 0 else None
            )

            names = SheetNames()
            summary_ws = wb.active
            assert summary_ws is not None
            summary_ws.title = names.take("Summary")
            charts_ws = wb.create_sheet(names.take("Charts"))
            about_title = names.take("About")  # reserved before spots can take the name
            streamed: dict[str, Any] = {}
            spot_sheets: list[str] = []
            for s in summaries:
                writer = writers.get(s.spot) or PersonListWriter(workdir, len(slots) + 1)
                for n, part in enumerate(writer.parts):
                    title = names.take(s.spot if n == 0 else f"{s.spot} ({n + 1})")
                    wb.create_sheet(title)
                    side = _hourly_table_cells(tally, s.spot, slots, styles) if n == 0 else None
                    streamed[title] = _sheet_writer(part, styles, side)
                    spot_sheets.append(title)
            about_ws = wb.create_sheet(about_title)

            _write_summary(summary_ws, summaries, period, slots, coverage is not None, empty_reason)
            _write_charts(charts_ws, summary_ws, summaries, tally, slots)
            _write_about(
                about_ws, site, period, generated, tally, summaries, agents, dead, empty_reason
            )
            save_with_streamed_sheets(wb, streamed, out_path, workdir)
        finally:
            for writer in writers.values():
                writer.close()
    log.info("wrote %s: %d people at %d spots", out_path, tally.events, len(summaries))
    return WorkbookResult(
        path=out_path,
        site=site.id,
        period=period,
        people=tally.events,
        spots=summaries,
        sheets=[summary_ws.title, charts_ws.title, *spot_sheets, about_ws.title],
        dead_letters=dead,
        empty_reason=empty_reason,
    )


def _sheet_writer(
    part: Any, styles: Styles, side: tuple[list[str], list[float], int] | None
) -> Any:
    def write(out: IO[bytes]) -> None:
        if side is None:
            write_sheet(out, part, PERSON_COLUMNS, styles)
        else:
            rows, widths, first_col = side
            write_sheet(out, part, PERSON_COLUMNS, styles, rows, widths, first_col)

    return write


# -- styles ------------------------------------------------------------------------------------


def _register_styles(wb: Workbook) -> Styles:
    """Register the styles the streamed sheets use and learn their ids.

    The probe cells live on a scratch sheet that is removed again; openpyxl keeps every style it
    has seen, so the ids stay valid in the saved styles part.
    """
    probe = wb.create_sheet("_styles")
    header = probe.cell(1, 1, "h")
    header.font = HEADER_FONT
    header.fill = HEADER_FILL
    quoted = probe.cell(1, 2, "q")
    quoted.quotePrefix = True
    by_format = {}
    for i, fmt in enumerate(
        (DATETIME_FORMAT, PERCENT_FORMAT, DECIMAL_FORMAT, QUALITY_FORMAT), start=3
    ):
        cell = probe.cell(1, i, 0)
        cell.number_format = fmt
        by_format[fmt] = cell.style_id
    styles = Styles(header=header.style_id, quote_prefix=quoted.style_id, by_format=by_format)
    wb.remove(probe)
    return styles


# -- cells for openpyxl sheets -------------------------------------------------------------------


def put(ws: Worksheet, row: int, col: int, value: object, number_format: str | None = None) -> None:
    """Write a cell; text always stays text (never a formula), formula-looking text is quoted."""
    cell = ws.cell(row, col)
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True
    else:
        cell.value = value
    if number_format:
        cell.number_format = number_format


def _header(ws: Worksheet, headers: Sequence[str], widths: Sequence[float], row: int = 1) -> None:
    for i, (text, width) in enumerate(zip(headers, widths, strict=True), start=1):
        put(ws, row, i, text)
        cell = ws.cell(row, i)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.column_dimensions[column_letter(i)].width = width


SUMMARY_HEADERS: tuple[tuple[str, float, str | None], ...] = (
    ("Rank", 6, None),
    ("Spot", 16, None),
    ("People", 9, None),
    ("People per covered hour", 11, DECIMAL_FORMAT),
    ("Hours of coverage", 10, DECIMAL_FORMAT),
    ("In", 7, None),
    ("Out", 7, None),
    ("Passing", 8, None),
    ("Women", 8, None),
    ("Men", 8, None),
    ("Gender unknown", 9, None),
    ("Women %", 8, PERCENT_FORMAT),
    ("Women % 95% CI low", 9, PERCENT_FORMAT),
    ("Women % 95% CI high", 9, PERCENT_FORMAT),
    ("Men %", 8, PERCENT_FORMAT),
    ("Men % 95% CI low", 9, PERCENT_FORMAT),
    ("Men % 95% CI high", 9, PERCENT_FORMAT),
    *((f"Age {g} %", 8, PERCENT_FORMAT) for g in AGE_GROUP_LABELS),
    ("Age unknown %", 9, PERCENT_FORMAT),
    ("Gender unknown %", 9, PERCENT_FORMAT),
    ("Peak hour", 12, None),
    ("People in peak hour", 9, None),
    ("Median dwell (s)", 9, DECIMAL_FORMAT),
    ("Agents", 20, None),
)
SUMMARY_COLUMN = {h: i for i, (h, _, _) in enumerate(SUMMARY_HEADERS, start=1)}


def _summary_values(s: SpotSummary, slots: list[str], has_coverage: bool) -> list[object]:
    return [
        s.rank,
        s.spot,
        s.people,
        s.people_per_hour,
        s.coverage_hours if has_coverage else "n/a",
        s.entered,
        s.left,
        s.passing,
        s.women,
        s.men,
        s.gender_unknown,
        s.women_share,
        s.women_ci[0] if s.women_ci else None,
        s.women_ci[1] if s.women_ci else None,
        s.men_share,
        s.men_ci[0] if s.men_ci else None,
        s.men_ci[1] if s.men_ci else None,
        *s.age_shares,
        s.age_unknown_share,
        s.gender_unknown_share,
        slots[s.peak_slot] if s.peak_slot is not None else None,
        s.peak_people if s.peak_slot is not None else None,
        s.median_dwell,
        ", ".join(s.agents),
    ]


def _write_summary(
    ws: Worksheet,
    summaries: list[SpotSummary],
    period: ReportPeriod,
    slots: list[str],
    has_coverage: bool,
    empty_reason: str | None,
) -> None:
    _header(ws, [h for h, _, _ in SUMMARY_HEADERS], [w for _, w, _ in SUMMARY_HEADERS])
    ws.row_dimensions[1].height = 45
    for r, s in enumerate(summaries, start=2):
        for c, (value, (_, _, fmt)) in enumerate(
            zip(_summary_values(s, slots, has_coverage), SUMMARY_HEADERS, strict=True), start=1
        ):
            put(ws, r, c, value, fmt)
    last = len(summaries) + 1
    ws.freeze_panes = "C2"
    ws.auto_filter.ref = f"A1:{column_letter(len(SUMMARY_HEADERS))}{last}"
    notes = [
        f"Period: {period.describe()}.",
        "Rank: by people per hour of coverage (hours the spot's agent was online); by people when no "
        "agent status was received."
        if has_coverage
        else "Rank: by people (no agent status was received, so hours of coverage are not known).",
        "Women % and Men %: share among people whose gender was estimated; the 95% CI (Wilson score "
        "interval) shows the sampling uncertainty of that share - a small spot gives a wide interval. "
        "It does not include the classifier's own error (see the model cards).",
        "Age %: share among people whose age was estimated. Unknown: no face good enough to judge.",
    ]
    if empty_reason:
        notes.insert(0, f"No data: {empty_reason}")
    for i, text in enumerate(notes, start=last + 2):
        put(ws, i, 1, text)
        ws.cell(i, 1).font = Font(bold=i == last + 2 and empty_reason is not None)


def _write_charts(
    ws: Worksheet,
    summary_ws: Worksheet,
    summaries: list[SpotSummary],
    tally: SiteTally,
    slots: list[str],
) -> None:
    """Data tables at the left, native charts to their right."""
    spots = [s.spot for s in summaries]
    n = len(summaries)
    # Hourly traffic: one column per spot.
    _header(ws, ["Hour", *spots], [12] + [10] * n)
    for r, label in enumerate(slots, start=2):
        put(ws, r, 1, label)
        for c, s in enumerate(summaries, start=2):
            spot_tally = tally.spots.get(s.spot)
            put(ws, r, c, int(spot_tally.counts[r - 2].sum()) if spot_tally else 0)
    # Age counts per spot, for the 100 % stacked chart.
    age_row = len(slots) + 4
    put(ws, age_row, 1, "Spot")
    for j, label in enumerate(AGE_GROUP_LABELS, start=2):
        put(ws, age_row, j, label)
        ws.cell(age_row, j).font = HEADER_FONT
    for i, s in enumerate(summaries, start=age_row + 1):
        put(ws, i, 1, s.spot)
        for j, count in enumerate(s.age_counts[: len(AGE_GROUP_LABELS)], start=2):
            put(ws, i, j, count)
    if not summaries:
        return
    cats = Reference(summary_ws, min_col=SUMMARY_COLUMN["Spot"], min_row=2, max_row=n + 1)
    anchor_col = column_letter(max(n + 3, 11))

    people = BarChart()
    people.title = "People per spot"
    people.y_axis.title = "people"
    people.add_data(
        Reference(summary_ws, min_col=SUMMARY_COLUMN["People"], min_row=1, max_row=n + 1),
        titles_from_data=True,
    )
    people.set_categories(cats)
    ws.add_chart(people, f"{anchor_col}1")

    gender = BarChart()
    gender.type = "bar"
    gender.grouping = "stacked"
    gender.overlap = 100
    gender.title = "Gender split per spot"
    gender.add_data(
        Reference(
            summary_ws,
            min_col=SUMMARY_COLUMN["Women"],
            max_col=SUMMARY_COLUMN["Gender unknown"],
            min_row=1,
            max_row=n + 1,
        ),
        titles_from_data=True,
    )
    gender.set_categories(cats)
    ws.add_chart(gender, f"{anchor_col}17")

    ages = BarChart()
    ages.type = "bar"
    ages.grouping = "percentStacked"
    ages.overlap = 100
    ages.title = "Age mix per spot (people with an age estimate)"
    ages.add_data(
        Reference(
            ws, min_col=2, max_col=len(AGE_GROUP_LABELS) + 1, min_row=age_row, max_row=age_row + n
        ),
        titles_from_data=True,
    )
    ages.set_categories(Reference(ws, min_col=1, min_row=age_row + 1, max_row=age_row + n))
    ws.add_chart(ages, f"{anchor_col}33")

    hourly = LineChart()
    hourly.title = "Traffic by hour"
    hourly.y_axis.title = "people"
    hourly.add_data(
        Reference(ws, min_col=2, max_col=n + 1, min_row=1, max_row=len(slots) + 1),
        titles_from_data=True,
    )
    hourly.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(slots) + 1))
    hourly.width = 24
    ws.add_chart(hourly, f"{anchor_col}49")


def _hourly_table_cells(
    tally: SiteTally, spot: str, slots: list[str], styles: Styles
) -> tuple[list[str], list[float], int]:
    """Rows of the hour x gender x age table placed right of the person list (explicit refs)."""
    first = len(PERSON_COLUMNS) + 2
    headers = (
        ["Hour"] + [f"{GENDER_TITLES[g]} {a}" for g in GENDER_TITLES for a in AGE_BANDS] + ["Total"]
    )
    counts = tally.spots[spot].counts if spot in tally.spots else None
    rows = [
        "".join(
            f'<c r="{column_letter(first + i)}1" t="inlineStr" s="{styles.header}"><is><t>{xml_text(h)}</t></is></c>'
            for i, h in enumerate(headers)
        )
    ]
    for k, label in enumerate([*slots, "Total"]):
        r = k + 2
        if counts is None:
            values = [0] * (len(headers) - 2)
        elif k < len(slots):
            values = counts[k].reshape(-1).tolist()
        else:
            values = counts.sum(axis=0).reshape(-1).tolist()
        cells = [
            f'<c r="{column_letter(first)}{r}" t="inlineStr"><is><t>{xml_text(label)}</t></is></c>'
        ]
        cells += [
            f'<c r="{column_letter(first + 1 + i)}{r}"><v>{v}</v></c>' for i, v in enumerate(values)
        ]
        cells.append(
            f'<c r="{column_letter(first + len(headers) - 1)}{r}"><v>{sum(values)}</v></c>'
        )
        rows.append("".join(cells))
    widths = [14.0] + [9.0] * (len(headers) - 1)
    return rows, widths, first


def _empty_reason(
    tally: SiteTally,
    summaries: list[SpotSummary],
    coverage: dict[str, list[tuple[datetime, datetime]]] | None,
    dead_letters: int,
) -> str:
    rejected = (
        f" {dead_letters} message(s) were rejected as invalid (see dead letters)."
        if dead_letters
        else ""
    )
    if coverage is None or not any(coverage.values()):
        return (
            "no events were stored for this site in this period and no agent reported being online; "
            "the cameras were off, not connected, or not yet deployed." + rejected
        )
    hours = sum(s.coverage_hours or 0.0 for s in summaries)
    return (
        f"agents were online for {hours:.1f} hours in total but recorded no people "
        "(check the camera view and the detector settings)." + rejected
    )


def _write_about(
    ws: Worksheet,
    site: SiteReportInfo,
    period: ReportPeriod,
    generated: datetime,
    tally: SiteTally,
    summaries: list[SpotSummary],
    agents: Sequence[Any],
    dead_letters: int,
    empty_reason: str | None,
) -> None:
    rows: list[tuple[str, object, str | None]] = [
        ("Site", site.id, None),
        ("Site name", site.name or site.id, None),
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
        ("Software version", __version__, None),
        ("Spots", len(summaries), None),
        ("Events (people)", tally.events, None),
        ("Dead letters in period", dead_letters, None),
    ]
    if empty_reason:
        rows.append(("No data", empty_reason, None))
    for text in sorted(tally.models):
        rows.append(("Models seen in events", _models_text(text), None))
    _header(ws, ["Item", "Value"], [26, 90])
    r = 2
    for key, value, fmt in rows:
        put(ws, r, 1, key)
        put(ws, r, 2, value, fmt)
        r += 1
    r += 1
    agent_headers = ["Agent", "Spot", "Last seen (UTC)", "State", "Software", "Config", "Models"]
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
    for col, width in zip("CDEFG", (20, 10, 12, 14, 50), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"


def _models_text(models_json: str) -> str:
    try:
        items = json.loads(models_json)
        return ", ".join(f"{m['role']}: {m['name']} {m['version']}" for m in items)
    except (ValueError, TypeError, KeyError):
        return models_json

"""The Summary sheet: one row per spot, ranked, with the notes that say how to read it."""

from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import column_letter
from aggregator.report.cells import DECIMAL_FORMAT, PERCENT_FORMAT, header, put
from aggregator.report.period import ReportPeriod
from aggregator.report.summary import AGE_GROUP_LABELS, SpotSummary

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


def summary_values(s: SpotSummary, slots: list[str], has_coverage: bool) -> list[object]:
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


def write_summary(
    ws: Worksheet,
    summaries: list[SpotSummary],
    period: ReportPeriod,
    slots: list[str],
    has_coverage: bool,
    empty_reason: str | None,
) -> None:
    header(ws, [h for h, _, _ in SUMMARY_HEADERS], [w for _, w, _ in SUMMARY_HEADERS])
    ws.row_dimensions[1].height = 45
    for r, s in enumerate(summaries, start=2):
        for c, (value, (_, _, fmt)) in enumerate(
            zip(summary_values(s, slots, has_coverage), SUMMARY_HEADERS, strict=True), start=1
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

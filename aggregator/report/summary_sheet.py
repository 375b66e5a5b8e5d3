"""The Summary sheet: one row per spot, ranked, with the few numbers that matter, and the notes
that say how to read them. It prints on one landscape page (fit to width, header row repeated)."""

from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import column_letter
from aggregator.report.cells import (
    DECIMAL_FORMAT,
    column_widths,
    header,
    notes_below,
    print_setup,
    put,
)
from aggregator.report.excel_text import wrapped_lines
from aggregator.report.period import ReportPeriod
from aggregator.report.summary import AGE_GROUP_LABELS, MIN_AGE_ESTIMATE, SpotSummary
from aggregator.report.wording import (
    age_judged_text,
    footage_text,
    judged_text,
    rate_rule,
    rate_text,
    share_lines,
    share_text,
)

# (header, width in characters, number format); widths fit the header's longest word, so a
# wrapped header is never cut.
SUMMARY_HEADERS: tuple[tuple[str, float, str | None], ...] = (
    ("Rank", 6, None),
    ("Spot", 18, None),
    ("People", 8, None),
    ("Footage", 9, None),
    ("People per hour", 14, DECIMAL_FORMAT),
    ("In", 6, None),
    ("Out", 6, None),
    ("Passing", 9, None),
    ("Women % (95 % interval)", 17, None),
    ("Gender judged", 10, None),
    # "23 %" over "(18-29 %)"; the Age mix sheet has the numbers.
    *((f"Age {g}", 12, None) for g in AGE_GROUP_LABELS),
    ("Age judged", 10, None),
    ("Busiest hour", 13, None),
)
SUMMARY_COLUMN = {h: i for i, (h, _, _) in enumerate(SUMMARY_HEADERS, start=1)}


def summary_values(s: SpotSummary, slots: list[str]) -> list[object]:
    peak = f"{slots[s.peak_slot]} ({s.peak_people})" if s.peak_slot is not None else "-"
    return [
        s.rank,
        s.spot,
        s.people,
        footage_text(s.coverage_hours),
        rate_text(s),
        s.entered,
        s.left,
        s.passing,
        share_text(s.women_share, s.women_ci),
        judged_text(s.gender_known, s.people),
        *(
            share_lines(share, interval)
            for share, interval in zip(s.age_shares, s.age_group_intervals, strict=True)
        ),
        age_judged_text(s),
        peak,
    ]


def write_summary(
    ws: Worksheet,
    summaries: list[SpotSummary],
    period: ReportPeriod,
    slots: list[str],
    has_coverage: bool,
    empty_reason: str | None,
    title: str,
) -> None:
    widths = column_widths(SUMMARY_HEADERS, [s.spot for s in summaries])
    header(ws, [h for h, _, _ in SUMMARY_HEADERS], widths)
    ws.row_dimensions[1].height = 32
    for r, s in enumerate(summaries, start=2):
        for c, (value, (_, _, fmt)) in enumerate(
            zip(summary_values(s, slots), SUMMARY_HEADERS, strict=True), start=1
        ):
            put(ws, r, c, value, fmt)
            # Numbers and short texts side by side read better centred; the spot's name left.
            ws.cell(r, c).alignment = Alignment(
                horizontal="left" if c == 2 else "center", vertical="top", wrap_text=True
            )
        # Neither LibreOffice nor Excel grows a row for wrapped text on opening: set it.
        values = summary_values(s, slots)
        lines = max(wrapped_lines(str(v), w) for v, w in zip(values, widths, strict=True))
        ws.row_dimensions[r].height = 15 * lines
    last = len(summaries) + 1
    ws.freeze_panes = "C2"
    width = len(SUMMARY_HEADERS)
    ws.auto_filter.ref = f"A1:{column_letter(width)}{last}"
    notes = [
        f"Period: {period.describe()}. Footage: the time each spot's camera was recording.",
        rate_rule(),
        "Rank: by people per hour among spots with enough footage, then the others by people."
        if has_coverage
        else "Rank: by people (no agent status was received, so the footage time is not known).",
        _shares_note(summaries),
        "Gender judged / Age judged: how many of the spot's people the shares rest on; the "
        "others showed no face good enough to judge.",
        "Age columns: share of each age group among people whose age was judged, with its 95 % "
        'interval where estimated; "counted" after Age judged marks a spot whose age mix is '
        f"counted (fewer than {MIN_AGE_ESTIMATE} people with an age judged, or no calibration): "
        "no interval. The Age mix sheet has every group's share, interval, counted share and "
        "people as numbers; the Charts sheet's age bars, stacked to 100 %, cannot show intervals.",
    ]
    if empty_reason:
        notes.insert(0, f"No data: {empty_reason}")
    notes_below(ws, notes, last + 2, widths)
    if empty_reason:
        ws.cell(last + 2, 1).font = Font(bold=True)  # "No data: ..." comes first
    print_setup(ws, title, title_rows="1:1")


def _shares_note(summaries: list[SpotSummary]) -> str:
    corrected = sorted(
        {c for s in summaries for c in (s.gender_calibration, s.age_calibration) if c}
    )
    plain = [s.spot for s in summaries if s.gender_known and s.gender_calibration is None]
    text = (
        "Women % and the age mix are estimated, not counted: each person's most likely label, "
        "counted, is pulled towards the classifier's own habits (a crowd of 75 % women is counted "
        "as about 69 %), so the shares are corrected for the classifier's confusion measured on "
        "labelled faces (calibration: " + "; ".join(corrected) + "). The 95 % interval carries "
        "both the sampling (who happened to pass) and the classifier's own uncertainty."
        if corrected
        else "Women %: share among people whose gender was judged, counted."
    )
    few_ages = [s.spot for s in summaries if s.age_known and s.age_calibration is None]
    if corrected and few_ages:
        text += (
            " The age mix is counted, not estimated, where fewer than "
            f"{MIN_AGE_ESTIMATE} people had an age judged ({', '.join(few_ages)})."
        )
    if plain:
        text += (
            " No calibration is known for the classifier at "
            + ", ".join(plain)
            + ": there the shares are plain counts and the interval (Wilson score) covers sampling "
            "only."
        )
    return text

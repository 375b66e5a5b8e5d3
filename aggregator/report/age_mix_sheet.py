"""The Age mix sheet: every spot's age groups with their estimated share, its 95 % interval, the
counted share and the people behind it, one row per spot and group, in the Summary's rank order.

The Summary shows the same shares and intervals as text, one cell per group; this sheet keeps them
as numbers, so a reader can filter one age group and sort the spots by it, and it is where the
intervals live for the Charts sheet's age bars, which are stacked to 100 % and so cannot carry an
interval per group.
"""

from openpyxl.styles import Alignment, Border, Side
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import column_letter
from aggregator.report.cells import (
    WHOLE_PERCENT_FORMAT,
    column_widths,
    header,
    notes_below,
    print_setup,
    put,
)
from aggregator.report.summary import AGE_GROUP_LABELS, MIN_AGE_ESTIMATE, SpotSummary
from aggregator.report.wording import age_method_text, judged_text

# (header, width in characters, number format), as on the Summary.
AGE_MIX_HEADERS: tuple[tuple[str, float, str | None], ...] = (
    ("Rank", 6, None),
    ("Spot", 18, None),
    ("Age group", 9, None),
    ("Share", 8, WHOLE_PERCENT_FORMAT),
    ("95 % low", 8, WHOLE_PERCENT_FORMAT),
    ("95 % high", 8, WHOLE_PERCENT_FORMAT),
    ("Counted share", 9, WHOLE_PERCENT_FORMAT),
    ("Counted people", 9, None),
    ("Age judged", 10, None),
    ("How", 24, None),
)
AGE_MIX_COLUMN = {h: i for i, (h, _, _) in enumerate(AGE_MIX_HEADERS, start=1)}
_LAST_OF_SPOT = Border(bottom=Side(style="thin", color="9AA5B5"))


def age_mix_rows(s: SpotSummary) -> list[list[object]]:
    """The spot's rows: one per age group, or a single row saying nobody's age was judged.

    A counted mix gets "-" where an interval would be: it has none, and a blank reads as missing.
    """
    judged = judged_text(s.age_known, s.people)
    how = age_method_text(s)
    if not s.age_known:
        return [[s.rank, s.spot, "-", "-", "-", "-", "-", 0, judged, how]]
    rows: list[list[object]] = []
    counted = s.age_counted_shares
    intervals = s.age_group_intervals
    for k, group in enumerate(AGE_GROUP_LABELS):
        interval = intervals[k]
        low, high = interval if interval is not None else ("-", "-")
        numbers = (s.age_shares[k], low, high, counted[k], s.age_counts[k])
        rows.append([s.rank, s.spot, group, *numbers, judged, how])
    return rows


def write_age_mix(ws: Worksheet, summaries: list[SpotSummary], title: str) -> None:
    widths = column_widths(AGE_MIX_HEADERS, [s.spot for s in summaries])
    header(ws, [h for h, _, _ in AGE_MIX_HEADERS], widths)
    ws.row_dimensions[1].height = 32
    r = 2
    for s in summaries:
        rows = age_mix_rows(s)
        for k, values in enumerate(rows):
            for c, (value, (_, _, fmt)) in enumerate(
                zip(values, AGE_MIX_HEADERS, strict=True), start=1
            ):
                put(ws, r, c, value, fmt)
                cell = ws.cell(r, c)
                cell.alignment = Alignment(
                    horizontal="left" if c in (2, len(values)) else "center", vertical="top"
                )
                if k == len(rows) - 1:
                    cell.border = _LAST_OF_SPOT
            r += 1
    last = r - 1
    width = len(AGE_MIX_HEADERS)
    ws.freeze_panes = "C2"
    ws.auto_filter.ref = f"A1:{column_letter(width)}{max(last, 1)}"
    # One short note: with a blank row it fits below three spots' 24 rows on the first page.
    notes = [
        "Share of the people whose age was judged: estimated, with its 95 % interval (who happened "
        "to pass and the classifier's own uncertainty), or counted with no interval (-), where "
        f"fewer than {MIN_AGE_ESTIMATE} were judged or no calibration is known. Counted share and "
        "people: each person's most likely group, beside every estimate. The Charts sheet's age "
        "bars, stacked to 100 %, cannot carry the intervals.",
    ]
    notes_below(ws, notes, last + 2, widths)
    print_setup(ws, title, title_rows="1:1")

"""The Charts sheet: native Excel charts laid out two by two per landscape page, so no page break
cuts one, with the tables they are drawn from to the right of the printed area.

Charts: people per spot; women's share per spot with its 95 % interval as error bars; the age mix
per spot (stacked to 100 %, which leaves no place for an interval per group: those are on the
Summary and the Age mix sheet); and traffic over the covered time only - in quarter hours for a
short survey, in hours otherwise - or, for a period of several days, people per day (a weekday x
hour heat map is on its own sheet, :func:`write_week`).
"""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import NumDataSource, NumRef
from openpyxl.chart.error_bar import ErrorBars
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import column_letter
from aggregator.report.cells import HEADER_FONT, PERCENT_FORMAT, header, print_setup, put
from aggregator.report.period import ReportPeriod
from aggregator.report.summary import AGE_GROUP_LABELS, SpotSummary
from aggregator.report.tally import SiteTally

# Chart geometry. The rows of the printed area are set to 15 pt (0.53 cm); a chart 7.5 cm high
# spans ~14.2 rows, so a step of 16 rows leaves a gap, and two rows of charts (32 rows, ~17 cm)
# fit the ~18 cm a landscape A4 page leaves inside its margins, at the ~96 % the page's width
# scales the printed area to. The manual break after each pair of rows keeps
# LibreOffice and Excel from putting an automatic one through a chart.
CHART_WIDTH_CM = 13.0
CHART_HEIGHT_CM = 7.5
ROWS_PER_CHART = 16
CHART_COLUMNS = (1, 9)  # A and I: 8 default-width columns (~13.5 cm) apart
PRINT_COLUMNS = 16  # A..P
DATA_COLUMN = PRINT_COLUMNS + 3  # the charts' tables start at S, outside the print area
# Quarter hours while the covered time is at most this long (a survey of short clips), hours
# beyond.
QUARTER_HOURS = 6


@dataclass(frozen=True)
class TrafficBins:
    """The bins the traffic chart shows: labels and, per spot, people in each."""

    title: str
    labels: list[str]
    counts: dict[str, list[int]]


def traffic_bins(
    tally: SiteTally,
    spots: list[str],
    coverage: dict[str, list[tuple[datetime, datetime]]] | None,
) -> TrafficBins:
    """Quarter-hour (short survey) or hourly bins over the covered time only.

    Covered bins are those any spot's coverage overlaps; without coverage information, the bins
    from the first to the last person seen. Bins nobody covered are left out, not drawn as zero.
    """
    period = tally.period
    n = period.quarters
    covered = np.zeros(n, dtype=bool)
    if coverage is not None and any(coverage.values()):
        for spans in coverage.values():
            for a, b in spans:
                first = int((a - period.start_utc).total_seconds() // 900)
                last = int(((b - period.start_utc).total_seconds() - 1e-6) // 900)
                covered[max(first, 0) : min(last, n - 1) + 1] = True
    else:
        total = sum((t.quarters for t in tally.spots.values()), np.zeros(n, dtype=np.int64))
        seen = np.flatnonzero(total)
        if seen.size:
            covered[seen[0] : seen[-1] + 1] = True
    # People are counted even where no coverage was reported (a heartbeat lost): show those bins.
    for t in tally.spots.values():
        covered |= t.quarters > 0
    index = np.flatnonzero(covered)
    per_spot = {
        s: (tally.spots[s].quarters if s in tally.spots else np.zeros(n, dtype=np.int64))
        for s in spots
    }
    if index.size and index.size / 4 <= QUARTER_HOURS:
        labels = _labels([period.quarter_start(int(k)) for k in index])
        counts = {s: [int(c[k]) for k in index] for s, c in per_spot.items()}
        return TrafficBins("People per quarter hour (covered time only)", labels, counts)
    hours = sorted({int(k) // 4 for k in index})
    labels = _labels([period.quarter_start(h * 4) for h in hours])
    counts = {s: [int(c[h * 4 : h * 4 + 4].sum()) for h in hours] for s, c in per_spot.items()}
    return TrafficBins("People per hour (covered time only)", labels, counts)


def _labels(starts: list[datetime]) -> list[str]:
    plain = [t.strftime("%H:%M") for t in starts]
    if len({t.date() for t in starts}) > 1:
        plain = [t.strftime("%a %d %H:%M") for t in starts]
    if len(set(plain)) < len(plain):  # the repeated hour of a daylight-saving change
        plain = [f"{p} {t.tzname()}" for p, t in zip(plain, starts, strict=True)]
    return plain


def write_charts(
    ws: Worksheet,
    summaries: list[SpotSummary],
    tally: SiteTally,
    coverage: dict[str, list[tuple[datetime, datetime]]] | None,
    title: str,
) -> None:
    """The charts' tables at the right, the charts in the printed area."""
    spots = [s.spot for s in summaries]
    n = len(summaries)
    col = DATA_COLUMN
    # Per spot: people, women's share and its interval as distances below and above.
    table = ["Spot", "People", "Women %", "Below", "Above", "Women % counted"]
    for j, h in enumerate(table):
        put(ws, 1, col + j, h)
        ws.cell(1, col + j).font = HEADER_FONT
    for i, s in enumerate(summaries, start=2):
        put(ws, i, col, s.spot)
        put(ws, i, col + 1, s.people)
        if s.women_share is not None and s.women_ci is not None:
            put(ws, i, col + 2, s.women_share, PERCENT_FORMAT)
            put(ws, i, col + 3, s.women_share - s.women_ci[0], PERCENT_FORMAT)
            put(ws, i, col + 4, s.women_ci[1] - s.women_share, PERCENT_FORMAT)
        if s.women_counted is not None:
            put(ws, i, col + 5, s.women_counted, PERCENT_FORMAT)
    # Age shares per spot as the Summary shows them (estimated where estimated), for the 100 %
    # stacked bars. Stacked bars leave no place for an interval per group; the intervals are on
    # the Summary and the Age mix sheet.
    age_col = col + len(table) + 1
    put(ws, 1, age_col, "Spot")
    ws.cell(1, age_col).font = HEADER_FONT
    for j, label in enumerate(AGE_GROUP_LABELS, start=1):
        put(ws, 1, age_col + j, label)
        ws.cell(1, age_col + j).font = HEADER_FONT
    for i, s in enumerate(summaries, start=2):
        put(ws, i, age_col, s.spot)
        for j, share in enumerate(s.age_shares, start=1):
            if share is not None:
                put(ws, i, age_col + j, share, PERCENT_FORMAT)
    # Traffic: bins down, one column per spot.
    traffic_col = age_col + len(AGE_GROUP_LABELS) + 2
    if tally.period.single_day:
        bins = traffic_bins(tally, spots, coverage)
    else:
        days = [tally.period.first.toordinal() + d for d in range(tally.period.days)]
        bins = TrafficBins(
            "People per day",
            [datetime.fromordinal(d).strftime("%a %d %b") for d in days],
            {
                s: (tally.spots[s].days.tolist() if s in tally.spots else [0] * len(days))
                for s in spots
            },
        )
    put(ws, 1, traffic_col, "Time" if tally.period.single_day else "Day")
    ws.cell(1, traffic_col).font = HEADER_FONT
    for j, name in enumerate(spots, start=1):
        put(ws, 1, traffic_col + j, name)
        ws.cell(1, traffic_col + j).font = HEADER_FONT
    for i, label in enumerate(bins.labels, start=2):
        put(ws, i, traffic_col, label)
        for j, name in enumerate(spots, start=1):
            put(ws, i, traffic_col + j, bins.counts[name][i - 2])

    print_setup(ws, title)
    ws.print_area = f"A1:{column_letter(PRINT_COLUMNS)}{2 * ROWS_PER_CHART}"
    ws.row_breaks.append(Break(id=2 * ROWS_PER_CHART))
    for r in range(1, 2 * ROWS_PER_CHART + 1):
        ws.row_dimensions[r].height = 15
    if not summaries:
        return
    cats = Reference(ws, min_col=col, min_row=2, max_row=n + 1)

    people = _chart(BarChart(), "People per spot", "people")
    people.add_data(Reference(ws, min_col=col + 1, min_row=1, max_row=n + 1), titles_from_data=True)
    people.set_categories(cats)
    people.legend = None
    _place(ws, people, 0, 0)

    women = _chart(BarChart(), "Women's share (95 % interval)", "share of people judged")
    women.add_data(Reference(ws, min_col=col + 2, min_row=1, max_row=n + 1), titles_from_data=True)
    women.set_categories(cats)
    women.y_axis.scaling.min = 0
    women.y_axis.scaling.max = 1
    women.y_axis.number_format = "0%"
    women.legend = None
    sheet = ws.title.replace("'", "''")
    women.series[0].errBars = ErrorBars(
        errDir="y",
        errBarType="both",
        errValType="cust",
        minus=NumDataSource(numRef=NumRef(f=_ref(sheet, col + 3, 2, n + 1))),
        plus=NumDataSource(numRef=NumRef(f=_ref(sheet, col + 4, 2, n + 1))),
    )
    _place(ws, women, 0, 1)

    ages = _chart(BarChart(), "Age mix per spot (people with an age judged)", None)
    ages.type = "bar"
    ages.grouping = "percentStacked"
    ages.overlap = 100
    ages.add_data(
        Reference(ws, min_col=age_col + 1, max_col=age_col + 8, min_row=1, max_row=n + 1),
        titles_from_data=True,
    )
    ages.set_categories(Reference(ws, min_col=age_col, min_row=2, max_row=n + 1))
    _place(ws, ages, 1, 0)

    if bins.labels:
        traffic = _chart(BarChart(), bins.title, "people")
        traffic.grouping = "stacked" if n > 1 else "clustered"
        traffic.overlap = 100 if n > 1 else None
        traffic.add_data(
            Reference(
                ws,
                min_col=traffic_col + 1,
                max_col=traffic_col + n,
                min_row=1,
                max_row=len(bins.labels) + 1,
            ),
            titles_from_data=True,
        )
        traffic.set_categories(
            Reference(ws, min_col=traffic_col, min_row=2, max_row=len(bins.labels) + 1)
        )
        _place(ws, traffic, 1, 1)


def _chart(chart: BarChart, title: str, y_title: str | None) -> BarChart:
    chart.title = title
    if y_title:
        chart.y_axis.title = y_title
    chart.width = CHART_WIDTH_CM
    chart.height = CHART_HEIGHT_CM
    # openpyxl hides axes unless told otherwise; a chart without its scale is unreadable.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    return chart


def _place(ws: Worksheet, chart: BarChart, row: int, column: int) -> None:
    ws.add_chart(chart, f"{column_letter(CHART_COLUMNS[column])}{1 + row * ROWS_PER_CHART}")


def _ref(sheet: str, col: int, first: int, last: int) -> str:
    letter = column_letter(col)
    return f"'{sheet}'!${letter}${first}:${letter}${last}"


def write_week(ws: Worksheet, tally: SiteTally, period: ReportPeriod, title: str) -> None:
    """Weekday x clock hour heat map of people over a multi-day period (all spots)."""
    total = sum((t.week_hours for t in tally.spots.values()), np.zeros((7, 24), dtype=np.int64))
    header(ws, ["Weekday", *(f"{h:02d}" for h in range(24)), "Total"], [11] + [4.5] * 24 + [7])
    for d, name in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), start=2):
        put(ws, d, 1, name)
        for h in range(24):
            put(ws, d, h + 2, int(total[d - 2, h]))
        put(ws, d, 26, int(total[d - 2].sum()))
    ws.conditional_formatting.add(
        "B2:Y8",
        ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="F8696B"),
    )
    put(ws, 10, 1, f"People by local weekday and hour over {period.describe()}, all spots.")
    print_setup(ws, title, title_rows="1:1")

"""The Charts sheet: its data tables at the left, native Excel charts to their right (people and
gender split per spot from the Summary sheet, age mix per spot, traffic by hour)."""

from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import column_letter
from aggregator.report.cells import HEADER_FONT, header, put
from aggregator.report.summary import AGE_GROUP_LABELS, SpotSummary
from aggregator.report.summary_sheet import SUMMARY_COLUMN
from aggregator.report.tally import SiteTally


def write_charts(
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
    header(ws, ["Hour", *spots], [12] + [10] * n)
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

    gender = _stacked_bars(
        "Gender split per spot",
        "stacked",
        Reference(
            summary_ws,
            min_col=SUMMARY_COLUMN["Women"],
            max_col=SUMMARY_COLUMN["Gender unknown"],
            min_row=1,
            max_row=n + 1,
        ),
        cats,
    )
    ws.add_chart(gender, f"{anchor_col}17")

    ages = _stacked_bars(
        "Age mix per spot (people with an age estimate)",
        "percentStacked",
        Reference(
            ws, min_col=2, max_col=len(AGE_GROUP_LABELS) + 1, min_row=age_row, max_row=age_row + n
        ),
        Reference(ws, min_col=1, min_row=age_row + 1, max_row=age_row + n),
    )
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


def _stacked_bars(title: str, grouping: str, data: Reference, categories: Reference) -> BarChart:
    """Horizontal bars, one per spot, its parts stacked (``stacked`` counts or ``percentStacked``
    shares); series titles from the first row of ``data``."""
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = grouping
    chart.overlap = 100
    chart.title = title
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(categories)
    return chart

"""The workbook printed by real LibreOffice: the Summary on one page, no chart cut by a page break.

The checks read LibreOffice's own layout (its page breaks and chart positions, through UNO) and
the PDF it prints (each page names its sheet in the header), as a reader printing the file sees it.
"""

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.worksheet.pagebreak import Break

from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.workbook import ReportOptions, SiteReportInfo, build_site_workbook
from footfall.contract import Direction, Gender
from footfall.contract.examples import example_event
from infra.render_workbook import layout, missing_tools
from tests.e2e.printed import check_printed
from tests.services import unavailable


@pytest.fixture(scope="module", autouse=True)
def office() -> None:
    if missing := missing_tools():
        unavailable(f"rendering a workbook needs {', '.join(missing)}")


def test_the_layout_check_sees_a_chart_a_page_break_cuts(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in range(1, 5):
        ws.cell(r, 1, r)
    for anchor in ("A3", "A40"):
        chart = BarChart()
        chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=4))
        chart.height = 8  # cm, ~15 rows
        ws.add_chart(chart, anchor)
    ws.row_breaks.append(Break(id=10))  # through the first chart, well above the second
    path = tmp_path / "cut.xlsx"
    wb.save(path)
    [sheet] = layout(path)
    assert len(sheet.charts) == 2
    cut = sheet.cut_charts()
    assert len(cut) == 1 and cut[0] == min(sheet.charts)


def test_a_busy_week_prints_its_summary_on_one_page_and_cuts_no_chart(tmp_path: Path) -> None:
    tz = ZoneInfo("Europe/Berlin")
    first = date(2026, 5, 4)
    period = ReportPeriod(tz, first, first + timedelta(days=6))
    rng = random.Random(7)
    spots = [f"spot-{k:02d}" + "-entrance-north-side" * (k % 2) for k in range(12)]
    start = datetime(2026, 5, 4, 6, tzinfo=UTC)
    events = [
        example_event(
            spot=spot,
            agent=f"cam-{k}",
            first_seen=start + timedelta(minutes=rng.randrange(7 * 24 * 60)),
            gender=rng.choice(list(Gender)),
            age_years=rng.choice([None, 5.0, 18.0, 30.0, 45.0, 70.0]),
            direction=rng.choice(list(Direction)),
        )
        for k, spot in enumerate(spots)
        for _ in range(rng.randrange(5, 60))
    ]
    events = [e for e in events if period.start_utc <= e.first_seen < period.end_utc]
    coverage = {s: [(period.start_utc, period.end_utc)] for s in spots}
    out = tmp_path / "week.xlsx"
    build_site_workbook(
        EventListSource(events, coverage=coverage),
        SiteReportInfo("site-a", "Site A", "Europe/Berlin"),
        period,
        out,
        ReportOptions(),
    )
    check_printed(out, tmp_path)

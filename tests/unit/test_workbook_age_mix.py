"""The age mix with its 95 % intervals, as the workbook shows it: as text on the Summary, as numbers
on the Age mix sheet, and as the shares the Charts sheet stacks - each checked against the
intervals the summary computed, and against the events' own counts."""

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.excel_text import wrapped_lines
from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.summary import AGE_GROUP_LABELS, MIN_AGE_ESTIMATE, SpotSummary
from aggregator.report.summary_sheet import SUMMARY_COLUMN, SUMMARY_HEADERS
from aggregator.report.wording import share_lines
from aggregator.report.workbook import (
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from footfall.contract import Gender, PersonEvent, age_group_for_years
from footfall.contract.examples import example_event

SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
DAY = date(2026, 5, 4)
NINE_LOCAL = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
AGES = (1.0, 5.0, 10.0, 17.0, 28.0, 40.0, 50.0, 70.0)  # one in each of the 8 groups


def _events(
    spot: str, n: int, rng: random.Random, ages: tuple[float | None, ...] = AGES
) -> list[PersonEvent]:
    return [
        example_event(
            spot=spot,
            agent=f"cam-{spot}",
            first_seen=NINE_LOCAL + timedelta(seconds=i),
            gender=rng.choice([Gender.FEMALE, Gender.MALE]),
            age_years=rng.choice(ages),
        )
        for i in range(n)
    ]


def _build(tmp_path: Path, events: list[PersonEvent]) -> WorkbookResult:
    return build_site_workbook(
        EventListSource(events),
        SITE,
        ReportPeriod.day(DAY, SITE.timezone),
        tmp_path / "site-a.xlsx",
        ReportOptions(generated_at=datetime(2026, 5, 5, 3, tzinfo=UTC)),
    )


def _age_mix(ws: Worksheet) -> dict[str, dict[str, dict[str, Any]]]:
    """The Age mix sheet's rows, by spot and age group (rows up to the first empty one)."""
    headers = [str(c.value) for c in ws[1] if c.value is not None]
    spots: dict[str, dict[str, dict[str, Any]]] = {}
    for row in ws.iter_rows(min_row=2, max_col=len(headers), values_only=True):
        if row[0] is None:
            break
        record = dict(zip(headers, row, strict=True))
        spots.setdefault(str(record["Spot"]), {})[str(record["Age group"])] = record
    return spots


def _summary(ws: Worksheet) -> dict[str, dict[str, Any]]:
    headers = [c.value for c in ws[1]]
    rows = {}
    for row in ws.iter_rows(min_row=2, values_only=True):
        if not isinstance(row[0], int):
            break
        record = dict(zip(headers, row, strict=False))
        rows[str(record["Spot"])] = record
    return rows


def _pct(x: float) -> str:
    return f"{x * 100:.0f}"


def _counted(events: list[PersonEvent], spot: str) -> dict[str, int]:
    groups = [
        age_group_for_years(e.age.years).value
        for e in events
        if e.spot == spot and e.age.years is not None
    ]
    return {g: groups.count(g) for g in AGE_GROUP_LABELS}


def test_an_estimated_age_mix_shows_each_groups_interval(tmp_path: Path) -> None:
    rng = random.Random(11)
    events = _events("north", 80, rng)
    result = _build(tmp_path, events)
    [north] = result.spots
    assert north.age_known == 80 and north.age_estimated and north.age_calibration
    wb = load_workbook(result.path)
    mix = _age_mix(wb["Age mix"])["north"]
    assert list(mix) == list(AGE_GROUP_LABELS)
    counted = _counted(events, "north")
    summary = _summary(wb["Summary"])["north"]
    assert summary["Age judged"] == "80 of 80"
    for k, group in enumerate(AGE_GROUP_LABELS):
        interval = north.age_intervals[k]
        assert interval is not None
        low, high = interval
        share = north.age_shares[k]
        assert share is not None and low <= share <= high and low < high, group
        row = mix[group]
        assert row["Share"] == pytest.approx(share)
        assert (row["95 % low"], row["95 % high"]) == pytest.approx((low, high))
        assert row["Counted share"] == pytest.approx(counted[group] / 80)
        assert row["Counted people"] == counted[group]
        assert row["Age judged"] == "80 of 80" and row["How"] == "estimated"
        # The Summary's text: share and interval, whole percent, as for the women's share.
        assert summary[f"Age {group}"] == f"{_pct(share)} %\n({_pct(low)}-{_pct(high)} %)"
    assert wb["Age mix"]["D2"].number_format == "0%"
    assert wb["Age mix"].print_title_rows == "$1:$1"
    assert wb["Age mix"].page_setup.orientation == "landscape"


def _charts_age_table(ws: Worksheet) -> dict[str, list[Any]]:
    first = next(c.column for c in ws[1] if c.value == AGE_GROUP_LABELS[0])
    rows = {}
    for r in range(2, ws.max_row + 1):
        spot = ws.cell(r, first - 1).value
        if spot is None:
            break
        rows[str(spot)] = [ws.cell(r, first + k).value for k in range(len(AGE_GROUP_LABELS))]
    return rows


def test_counted_and_unjudged_spots_say_so_instead_of_an_interval(tmp_path: Path) -> None:
    rng = random.Random(5)
    events = (
        _events("busy", 60, rng)
        + _events("quiet", MIN_AGE_ESTIMATE - 1, rng)
        + _events("faceless", 4, rng, ages=(None,))
    )
    result = _build(tmp_path, events)
    by_spot: dict[str, SpotSummary] = {s.spot: s for s in result.spots}
    assert by_spot["busy"].age_estimated and not by_spot["quiet"].age_estimated
    wb = load_workbook(result.path)
    mix = _age_mix(wb["Age mix"])
    # In the Summary's rank order, 8 rows a judged spot, one for the spot nobody was judged at.
    assert list(mix) == [s.spot for s in result.spots]
    assert {spot: len(groups) for spot, groups in mix.items()} == {
        "busy": 8,
        "quiet": 8,
        "faceless": 1,
    }
    quiet = mix["quiet"]
    counted = _counted(events, "quiet")
    for group, row in quiet.items():
        assert (row["95 % low"], row["95 % high"]) == ("-", "-")
        assert row["How"] == f"counted: under {MIN_AGE_ESTIMATE} judged"
        assert row["Share"] == pytest.approx(counted[group] / (MIN_AGE_ESTIMATE - 1))
        assert row["Share"] == pytest.approx(row["Counted share"])
    assert mix["faceless"]["-"]["How"] == "nobody's age judged"
    assert mix["faceless"]["-"]["Age judged"] == "0 of 4"
    summary = _summary(wb["Summary"])
    judged = MIN_AGE_ESTIMATE - 1
    assert summary["quiet"]["Age judged"] == f"{judged} of {judged}, counted"
    assert all("(" not in summary["quiet"][f"Age {g}"] for g in AGE_GROUP_LABELS)
    assert all("(" in summary["busy"][f"Age {g}"] for g in AGE_GROUP_LABELS)
    assert summary["busy"]["Age judged"] == "60 of 60"
    assert summary["faceless"]["Age 0-2"] == "-" and summary["faceless"]["Age judged"] == "0 of 4"
    # The stacked chart draws the shares the Summary shows (estimated at busy), not raw counts.
    chart = _charts_age_table(wb["Charts"])
    assert chart["busy"] == pytest.approx(list(by_spot["busy"].age_shares))
    assert chart["quiet"] == pytest.approx([counted[g] / judged for g in AGE_GROUP_LABELS])
    assert chart["faceless"] == [None] * len(AGE_GROUP_LABELS)
    notes = " ".join(
        str(c.value) for c in wb["Age mix"]["A"] if isinstance(c.value, str) and len(c.value) > 40
    )
    assert "stacked to 100 %" in notes and f"fewer than {MIN_AGE_ESTIMATE}" in notes


@pytest.mark.parametrize(
    ("share", "interval", "text", "lines"),
    [
        (0.71, (0.58, 0.79), "71 %\n(58-79 %)", 2),
        (0.17, None, "17 %", 1),
        (None, None, "-", 1),
    ],
)
def test_a_summary_age_cell_puts_its_interval_on_a_line_of_its_own(
    share: float | None, interval: tuple[float, float] | None, text: str, lines: int
) -> None:
    # Left to the reader's wrapping, "71 % (58-79 %)" broke inside the interval at "(58-79".
    assert share_lines(share, interval) == text
    assert wrapped_lines(text, SUMMARY_HEADERS[SUMMARY_COLUMN["Age 8-12"] - 1][1]) == lines
    # The row is set as tall as its line breaks, however wide the column.
    assert wrapped_lines(text, 60) == lines

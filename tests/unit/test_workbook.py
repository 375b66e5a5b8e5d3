"""The site workbook, opened again with openpyxl and checked cell by cell against the events."""

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.stats import wilson_interval
from aggregator.report.workbook import (
    PERSON_COLUMNS,
    ReportOptions,
    SiteReportInfo,
    build_site_workbook,
)
from footfall.contract import Direction, Gender, PersonEvent
from footfall.contract.examples import example_event

SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
DAY = date(2026, 5, 4)
BERLIN_MIDNIGHT_UTC = datetime(2026, 5, 3, 22, 0, tzinfo=UTC)  # CEST = UTC+2
GENERATED = datetime(2026, 5, 5, 3, 0, tzinfo=UTC)


def _ev(
    spot: str, at: datetime, gender: Gender = Gender.FEMALE, age: float | None = 30.0, **kw: Any
) -> PersonEvent:
    return example_event(
        spot=spot, agent=f"cam-{spot}"[:32], first_seen=at, gender=gender, age_years=age, **kw
    )


def _build(
    tmp_path: Path, events: list[PersonEvent], period: ReportPeriod | None = None, **kw: Any
) -> Path:
    source = EventListSource(events, **kw)
    out = tmp_path / "site-a.xlsx"
    build_site_workbook(
        source,
        SITE,
        period or ReportPeriod.day(DAY, SITE.timezone),
        out,
        ReportOptions(generated_at=GENERATED),
    )
    return out


def _summary_rows(ws: Worksheet) -> dict[str, dict[str, Any]]:
    headers = [c.value for c in ws[1]]
    rows = {}
    for row in ws.iter_rows(min_row=2, values_only=True):
        if row[0] is None or not isinstance(row[0], int):
            break
        record = dict(zip(headers, row, strict=False))
        rows[str(record["Spot"])] = record
    return rows


def test_totals_shares_and_confidence_intervals(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    events = (
        [
            _ev("north", at + timedelta(minutes=i), Gender.FEMALE, 30.0, direction=Direction.IN)
            for i in range(7)
        ]
        + [
            _ev("north", at + timedelta(minutes=10 + i), Gender.MALE, 70.0, direction=Direction.OUT)
            for i in range(3)
        ]
        + [
            _ev(
                "north",
                at + timedelta(minutes=20),
                Gender.UNKNOWN,
                None,
                direction=Direction.PASSED,
            )
        ]
        + [_ev("south", at, Gender.MALE, 5.0)]
    )
    wb = load_workbook(_build(tmp_path, events))
    assert wb.sheetnames == ["Summary", "Charts", "north", "south", "About"]
    rows = _summary_rows(wb["Summary"])
    north = rows["north"]
    assert (north["Rank"], north["People"], north["In"], north["Out"], north["Passing"]) == (
        1,
        11,
        7,
        3,
        1,
    )
    assert (north["Women"], north["Men"], north["Gender unknown"]) == (7, 3, 1)
    assert north["Women %"] == pytest.approx(0.7)
    low, high = wilson_interval(7, 10) or (0, 0)
    assert north["Women % 95% CI low"] == pytest.approx(low)
    assert north["Women % 95% CI high"] == pytest.approx(high)
    assert north["Men %"] == pytest.approx(0.3)
    assert north["Age 25-32 %"] == pytest.approx(0.7)
    assert north["Age 60-100 %"] == pytest.approx(0.3)
    assert north["Age unknown %"] == pytest.approx(1 / 11)
    assert north["Gender unknown %"] == pytest.approx(1 / 11)
    assert north["Peak hour"] == "09:00"
    assert north["People in peak hour"] == 11
    assert north["Median dwell (s)"] == pytest.approx(4.2)
    assert rows["south"]["Women %"] == 0 and rows["south"]["Age 4-6 %"] == 1
    assert rows["south"]["Hours of coverage"] == "n/a"  # no status information at all
    # Known textbook value: 7 of 10 -> Wilson 95% interval ~ [0.3968, 0.8922].
    assert (low, high) == pytest.approx((0.3968, 0.8922), abs=1e-4)


def test_person_list_and_hourly_table_in_local_time(tmp_path: Path) -> None:
    first = BERLIN_MIDNIGHT_UTC + timedelta(minutes=30)  # 00:30 local
    last = BERLIN_MIDNIGHT_UTC + timedelta(hours=23, minutes=59)  # 23:59 local
    before = BERLIN_MIDNIGHT_UTC - timedelta(seconds=1)  # 23:59:59 the day before (local)
    after = BERLIN_MIDNIGHT_UTC + timedelta(hours=24)  # 00:00 the next day (local)
    events = [_ev("north", t) for t in (first, last, before, after)]
    ws = load_workbook(_build(tmp_path, events))["north"]
    headers = [c.value for c in ws[1]]
    assert headers[: len(PERSON_COLUMNS)] == [c.header for c in PERSON_COLUMNS]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:O{3}"
    assert ws["B2"].value == datetime(2026, 5, 4, 0, 30)
    assert ws["B2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["B3"].value == datetime(2026, 5, 4, 23, 59)
    assert ws["A2"].value == str(events[0].event_id)
    assert ws["G2"].value == pytest.approx(0.93) and ws["G2"].number_format == "0.0%"
    # Hour table right of the list: hour labels, women 25-32 column, totals.
    hour_col = headers.index("Hour") + 1
    women_2532 = headers.index("Women 25-32") + 1
    total_col = headers.index("Total") + 1
    assert ws.cell(2, hour_col).value == "00:00"
    assert ws.cell(25, hour_col).value == "23:00"
    assert ws.cell(2, women_2532).value == 1
    assert ws.cell(25, women_2532).value == 1
    assert ws.cell(26, hour_col).value == "Total"
    assert ws.cell(26, total_col).value == 2


@pytest.mark.parametrize(
    ("day", "hours", "repeated"),
    [(date(2026, 3, 29), 23, None), (date(2026, 10, 25), 25, "02:00")],
    ids=["spring-forward", "fall-back"],
)
def test_daylight_saving_days(tmp_path: Path, day: date, hours: int, repeated: str | None) -> None:
    period = ReportPeriod.day(day, "Europe/Berlin")
    assert period.hours == hours
    # One person in every real hour of the local day, plus one on each side of the day.
    starts = [period.start_utc + timedelta(hours=k, minutes=5) for k in range(hours)]
    events = [_ev("north", t) for t in starts]
    events += [_ev("north", period.start_utc - timedelta(minutes=1)), _ev("north", period.end_utc)]
    wb = load_workbook(_build(tmp_path, events, period))
    assert _summary_rows(wb["Summary"])["north"]["People"] == hours
    charts = wb["Charts"]
    labels = [charts.cell(r, 1).value for r in range(2, hours + 2)]
    assert len(labels) == hours and all(charts.cell(r, 2).value == 1 for r in range(2, hours + 2))
    assert charts.cell(hours + 2, 1).value is None
    if repeated:
        assert sum(1 for label in labels if str(label).startswith(repeated)) == 2
        assert f"{repeated} CEST" in labels and f"{repeated} CET" in labels
    else:
        assert not any(str(label).startswith("02:") for label in labels)


def test_formula_looking_text_stays_text(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=10)
    notes = ['=HYPERLINK("http://evil","x")', "+1+2", "-3", "@SUM(A1)", "plain"]
    events = [
        _ev("north", at + timedelta(minutes=i)).model_copy(update={"crop_note": n})
        for i, n in enumerate(notes)
    ]
    wb = load_workbook(_build(tmp_path, events))
    ws = wb["north"]
    note_col = [c.header for c in PERSON_COLUMNS].index("Note") + 1
    for r, note in enumerate(notes, start=2):
        cell = ws.cell(r, note_col)
        assert cell.value == note
        assert cell.data_type == "s"  # a string, never a formula
        assert cell.quotePrefix == (note != "plain")


def test_empty_day_says_why(tmp_path: Path) -> None:
    wb = load_workbook(_build(tmp_path, [], dead_letters=3))
    assert wb.sheetnames == ["Summary", "Charts", "About"]
    summary = wb["Summary"]
    texts = [str(c.value) for c in summary["A"] if c.value is not None]
    assert any(
        t.startswith(
            "No data: no events were stored for this site in this period and no agent reported being online"
        )
        and "3 message(s) were rejected" in t
        for t in texts
    )
    about = {
        r[0]: r[1] for r in wb["About"].iter_rows(min_row=2, max_col=2, values_only=True) if r[0]
    }
    assert about["Events (people)"] == 0
    assert about["Dead letters in period"] == 3
    assert about["Time zone"] == "Europe/Berlin"


def test_spot_offline_half_the_day_is_ranked_by_people_per_covered_hour(tmp_path: Path) -> None:
    start = BERLIN_MIDNIGHT_UTC
    events = [_ev("half", start + timedelta(hours=1, minutes=i)) for i in range(30)]  # 30 in 12 h
    events += [_ev("full", start + timedelta(hours=1, minutes=i)) for i in range(40)]  # 40 in 24 h
    coverage = {
        "half": [(start, start + timedelta(hours=12))],
        "full": [(start - timedelta(hours=3), start + timedelta(hours=30))],  # clipped to the day
        "dark": [],  # an agent that never came online
    }
    wb = load_workbook(_build(tmp_path, events, coverage=coverage))
    rows = _summary_rows(wb["Summary"])
    assert rows["half"]["Hours of coverage"] == pytest.approx(12)
    assert rows["full"]["Hours of coverage"] == pytest.approx(24)
    assert rows["half"]["People per covered hour"] == pytest.approx(2.5)
    assert rows["full"]["People per covered hour"] == pytest.approx(40 / 24)
    assert rows["half"]["Rank"] == 1 and rows["full"]["Rank"] == 2
    assert rows["dark"]["People"] == 0 and rows["dark"]["Hours of coverage"] == 0
    assert wb.sheetnames == ["Summary", "Charts", "half", "full", "dark", "About"]


def test_person_list_continues_past_the_row_limit(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=8)
    events = [_ev("north", at + timedelta(seconds=i)) for i in range(25)]
    source = EventListSource(events)
    out = tmp_path / "w.xlsx"
    build_site_workbook(
        source,
        SITE,
        ReportPeriod.day(DAY, SITE.timezone),
        out,
        ReportOptions(generated_at=GENERATED, max_rows_per_sheet=10, batch_size=7),
    )
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Charts", "north", "north (2)", "north (3)", "About"]
    ids = [
        wb[name].cell(r, 1).value
        for name in ("north", "north (2)", "north (3)")
        for r in range(2, 12)
    ]
    assert [i for i in ids if i] == [str(e.event_id) for e in events]
    assert _summary_rows(wb["Summary"])["north"]["People"] == 25


def test_sheet_names_are_sanitized_and_unique(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=8)
    events = [_ev(spot, at) for spot in ("Summary", "summary", "About", "x" * 32)]
    wb = load_workbook(_build(tmp_path, events))
    assert len(wb.sheetnames) == len({n.lower() for n in wb.sheetnames})
    assert all(len(n) <= 31 for n in wb.sheetnames)
    assert wb.sheetnames[0] == "Summary" and wb.sheetnames[-1] == "About"


def test_charts_are_native_excel_charts(tmp_path: Path) -> None:
    rng = random.Random(3)
    at = BERLIN_MIDNIGHT_UTC
    events = [
        _ev(rng.choice(["a", "b"]), at + timedelta(minutes=rng.randrange(1440))) for _ in range(50)
    ]
    out = _build(tmp_path, events)
    import zipfile

    with zipfile.ZipFile(out) as zf:
        charts = [n for n in zf.namelist() if n.startswith("xl/charts/chart")]
        xml = "".join(zf.read(n).decode() for n in charts)
    assert len(charts) == 4
    assert xml.count("<barChart>") == 3 and xml.count("<lineChart>") == 1
    assert '<grouping val="percentStacked" />' in xml and '<grouping val="stacked" />' in xml

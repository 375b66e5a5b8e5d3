"""The site workbook, opened again with openpyxl and checked cell by cell against the events."""

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
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
from aggregator.shares.estimate import adjusted_count
from aggregator.shares.registry import calibration_for
from footfall.contract import Direction, Gender, ModelRef, ModelRole, PersonEvent
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


def _table(ws: Worksheet, first_header: str) -> dict[str, dict[str, Any]]:
    """The table on row 1 of ``ws`` that starts with ``first_header``, by its first column."""
    col = next(c.column for c in ws[1] if c.value == first_header)
    headers: list[str] = []
    for c in ws[1][col - 1 :]:
        if c.value is None:
            break
        headers.append(str(c.value))
    rows = {}
    for r in range(2, ws.max_row + 1):
        key = ws.cell(r, col).value
        if key is None:
            break
        rows[str(key)] = {h: ws.cell(r, col + i).value for i, h in enumerate(headers)}
    return rows


UNCALIBRATED = [
    ModelRef(role=ModelRole.GENDER, name="home-made-gender", version="1"),
    ModelRef(role=ModelRole.AGE, name="home-made-age", version="1"),
]


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
    events = [e.model_copy(update={"models": UNCALIBRATED}) for e in events]
    wb = load_workbook(_build(tmp_path, events))
    assert wb.sheetnames == ["Summary", "Charts", "Age mix", "north", "south", "About"]
    rows = _summary_rows(wb["Summary"])
    north = rows["north"]
    assert (north["Rank"], north["People"], north["In"], north["Out"], north["Passing"]) == (
        1,
        11,
        7,
        3,
        1,
    )
    # A classifier without a calibration: plain counts, a sampling-only (Wilson) interval.
    assert north["Women % (95 % interval)"] == "70 % (40-89 %)"
    low, _ = wilson_interval(7, 10) or (0, 0)
    # Without a calibration the age mix is counted: no interval, and Age judged says so.
    assert north["Gender judged"] == "10 of 11" and north["Age judged"] == "10 of 11, counted"
    assert north["Age 25-32"] == "70 %"
    assert north["Age 60-100"] == "30 %"
    assert north["Busiest hour"] == "09:00 (11)"
    assert north["Footage"] == "n/a" and north["People per hour"] == "n/a (no coverage known)"
    assert rows["south"]["Women % (95 % interval)"] == "0 % (0-79 %)"
    assert rows["south"]["Age 4-6"] == "100 %"
    # The charts' table keeps the numbers behind the texts.
    charts = _table(wb["Charts"], "Spot")
    assert charts["north"]["Women %"] == pytest.approx(0.7)
    assert charts["north"]["Women % counted"] == pytest.approx(0.7)
    assert charts["north"]["Below"] == pytest.approx(0.7 - low)
    assert charts["north"]["People"] == 11
    notes = " ".join(str(c.value) for c in wb["Summary"]["A"] if isinstance(c.value, str))
    assert "No calibration is known for the classifier at north, south" in notes


def test_shares_of_a_calibrated_classifier_are_corrected_with_a_wider_interval(
    tmp_path: Path,
) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    events = [
        _ev("north", at + timedelta(seconds=i), Gender.FEMALE if i < 28 else Gender.MALE)
        for i in range(40)
    ]
    wb = load_workbook(_build(tmp_path, events))
    north = _summary_rows(wb["Summary"])["north"]
    # 28 of 40 counted as women; the shipped calibration of the events' gender head undoes its
    # measured confusion, and the interval widens by the classifier's own uncertainty.
    cal = calibration_for("gender", "cydral-gender")
    assert cal is not None and cal.calibration.confusion is not None
    corrected = adjusted_count(np.array([0.7, 0.3]), cal.calibration.confusion)[0]
    assert corrected > 0.7  # the classifier calls women men more often than the reverse
    text = north["Women % (95 % interval)"]
    assert text.startswith(f"{corrected * 100:.0f} % (")
    low, high = (float(v) / 100 for v in text.split("(")[1].rstrip(" %)").split("-"))
    wilson = wilson_interval(28, 40) or (0, 0)
    assert low <= corrected <= high and high - low > wilson[1] - wilson[0]
    charts = _table(wb["Charts"], "Spot")
    assert charts["north"]["Women % counted"] == pytest.approx(0.7)
    assert charts["north"]["Women %"] == pytest.approx(corrected)
    notes = " ".join(str(c.value) for c in wb["Summary"]["A"] if isinstance(c.value, str))
    assert "calibration: cydral-age on UTKFace val; cydral-gender on UTKFace val" in notes
    about = {
        r[0]: r[1] for r in wb["About"].iter_rows(min_row=2, max_col=2, values_only=True) if r[0]
    }
    assert "north: cydral-gender on UTKFace val" in str(about["Share calibrations"])
    # Known textbook value: 7 of 10 -> Wilson 95% interval ~ [0.3968, 0.8922].
    assert wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)


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
    traffic = _table(wb["Charts"], "Time")
    labels = list(traffic)
    assert len(labels) == hours and all(row["north"] == 1 for row in traffic.values())
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
    assert wb.sheetnames == ["Summary", "Charts", "Age mix", "About"]
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
    assert rows["half"]["Footage"] == "12.0 h"
    assert rows["full"]["Footage"] == "24.0 h"
    assert rows["half"]["People per hour"] == pytest.approx(2.5)
    assert rows["full"]["People per hour"] == pytest.approx(40 / 24)
    assert rows["half"]["Rank"] == 1 and rows["full"]["Rank"] == 2
    assert rows["dark"]["People"] == 0 and rows["dark"]["Footage"] == "0 s"
    assert rows["dark"]["People per hour"] == "0 people in 0 s of footage"
    assert wb.sheetnames == ["Summary", "Charts", "Age mix", "half", "full", "dark", "About"]


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
    assert wb.sheetnames == [
        "Summary",
        "Charts",
        "Age mix",
        "north",
        "north (2)",
        "north (3)",
        "About",
    ]
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
    assert xml.count("<barChart>") == 4 and "<lineChart>" not in xml
    assert '<grouping val="percentStacked" />' in xml and '<grouping val="stacked" />' in xml
    # The women's share carries its interval as custom error bars from the charts' table.
    assert xml.count("<errBars>") == 1 and '<errValType val="cust" />' in xml
    assert "'Charts'!$V$2:$V$3" in xml and "'Charts'!$W$2:$W$3" in xml


def test_short_footage_shows_people_in_footage_and_ranks_after_rated_spots(tmp_path: Path) -> None:
    start = BERLIN_MIDNIGHT_UTC + timedelta(hours=10)
    events = [_ev("clip", start + timedelta(seconds=i)) for i in range(9)]  # 9 people in 9 s
    events += [_ev("street", start + timedelta(minutes=7 * i)) for i in range(5)]  # 5 in 30 min
    coverage = {
        "clip": [(start, start + timedelta(seconds=9))],
        "street": [(start, start + timedelta(minutes=30))],
    }
    wb = load_workbook(_build(tmp_path, events, coverage=coverage))
    rows = _summary_rows(wb["Summary"])
    assert rows["clip"]["People per hour"] == "9 people in 9 s of footage"
    assert rows["clip"]["Footage"] == "9 s"
    assert rows["street"]["People per hour"] == pytest.approx(10.0)
    assert rows["street"]["Footage"] == "30 min"
    # 9 in 9 s would be 3,600 per hour; the rule ranks the spot with a real rate first.
    assert rows["street"]["Rank"] == 1 and rows["clip"]["Rank"] == 2
    notes = " ".join(str(c.value) for c in wb["Summary"]["A"] if isinstance(c.value, str))
    assert "at least 15 min of footage" in notes
    # Traffic over the covered quarter hours only (local time): the clip is in the first.
    traffic = _table(wb["Charts"], "Time")
    assert list(traffic) == ["10:00", "10:15"]
    assert traffic["10:00"]["clip"] == 9 and traffic["10:00"]["street"] == 3
    assert traffic["10:15"]["clip"] == 0 and traffic["10:15"]["street"] == 2


def test_a_long_covered_span_is_charted_by_hour(tmp_path: Path) -> None:
    start = BERLIN_MIDNIGHT_UTC + timedelta(hours=8)
    events = [_ev("north", start + timedelta(hours=h, minutes=20)) for h in range(8)]
    coverage = {"north": [(start, start + timedelta(hours=8))]}
    traffic = _table(load_workbook(_build(tmp_path, events, coverage=coverage))["Charts"], "Time")
    assert list(traffic) == [f"{h:02d}:00" for h in range(8, 16)]
    assert all(row["north"] == 1 for row in traffic.values())


def test_a_multi_day_period_has_a_daily_trend_and_a_weekday_hour_heat_map(tmp_path: Path) -> None:
    monday = BERLIN_MIDNIGHT_UTC  # 2026-05-04 is a Monday
    events = [_ev("north", monday + timedelta(days=d, hours=9)) for d in range(3)]
    events += [_ev("north", monday + timedelta(days=1, hours=9, minutes=5))]
    period = ReportPeriod(ZoneInfo("Europe/Berlin"), DAY, DAY + timedelta(days=6))
    wb = load_workbook(_build(tmp_path, events, period))
    assert wb.sheetnames == ["Summary", "Charts", "Age mix", "Week", "north", "About"]
    daily = _table(wb["Charts"], "Day")
    assert list(daily)[:3] == ["Mon 04 May", "Tue 05 May", "Wed 06 May"] and len(daily) == 7
    assert [row["north"] for row in daily.values()] == [1, 2, 1, 0, 0, 0, 0]
    week = wb["Week"]
    assert [c.value for c in week[1]][:3] == ["Weekday", "00", "01"]
    assert week.cell(3, 1).value == "Tue" and week.cell(3, 2 + 9).value == 2  # 09:00 local
    assert week.cell(3, 26).value == 2 and week.conditional_formatting


def test_hour_table_drops_its_all_zero_columns(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    events = [_ev("north", at, Gender.FEMALE, 30.0), _ev("north", at, Gender.MALE, None)]
    ws = load_workbook(_build(tmp_path, events))["north"]
    headers = [c.value for c in ws[1] if c.value is not None][len(PERSON_COLUMNS) :]
    assert headers == ["Hour", "Women 25-32", "Men unknown", "Total"]


def test_every_sheet_prints_landscape_fit_to_width_with_its_header(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    wb = load_workbook(_build(tmp_path, [_ev("north", at)]))
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.oddHeader.right.text == "&A"
    assert wb["Summary"].print_title_rows == "$1:$1"
    assert wb["north"].print_title_rows == "$1:$1"
    assert wb["Charts"].row_breaks.brk[0].id == 32


def test_about_lists_each_model_once(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    first = _ev("north", at)
    other = first.models[:1]
    events = [first, _ev("south", at).model_copy(update={"models": other})]
    about = {
        r[0]: r[1]
        for r in load_workbook(_build(tmp_path, events))["About"].iter_rows(
            min_row=2, max_col=2, values_only=True
        )
        if r[0]
    }
    listed = str(about["Models in the events"]).split("; ")
    assert len(listed) == len(set(listed)) == len(first.models)


def test_a_handful_of_people_gets_its_age_mix_counted_not_estimated(tmp_path: Path) -> None:
    at = BERLIN_MIDNIGHT_UTC + timedelta(hours=9)
    events = [_ev("north", at + timedelta(seconds=i), Gender.FEMALE, 30.0) for i in range(5)]
    wb = load_workbook(_build(tmp_path, events))
    north = _summary_rows(wb["Summary"])["north"]
    assert north["Age 25-32"] == "100 %" and north["Age 0-2"] == "0 %"
    assert north["Age judged"] == "5 of 5, counted"
    notes = " ".join(str(c.value) for c in wb["Summary"]["A"] if isinstance(c.value, str))
    assert "The age mix is counted, not estimated, where fewer than 30 people" in notes

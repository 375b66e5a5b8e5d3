"""The person list beside the workbook as CSV and Parquet: the same rows and columns as the
workbook's person lists (plus the spot), written a frame at a time, published only when complete."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from aggregator.report.bulk_sheet import Column
from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.workbook import (
    PERSON_COLUMNS,
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from footfall.contract import Direction, Gender, PersonEvent
from footfall.contract.examples import example_event

SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
DAY = date(2026, 5, 4)
T0 = datetime(2026, 5, 4, 8, 0, 0, 250000, tzinfo=UTC)
HEADERS = ["Spot", *(c.header for c in PERSON_COLUMNS)]


def _events() -> list[PersonEvent]:
    events = []
    for i in range(20):
        e = example_event(
            spot=("north", "south", "east")[i % 3],
            track_id=i,
            first_seen=T0 + timedelta(minutes=i, milliseconds=i),
            gender=(Gender.FEMALE, Gender.MALE, Gender.UNKNOWN)[i % 3],
            age_years=None if i % 4 == 0 else 20.0 + i,
            direction=(Direction.IN, Direction.OUT)[i % 2],
            with_crop=i % 5 != 0,
        )
        if i == 7:  # a device's note that would be a formula in a spreadsheet
            e = e.model_copy(update={"crop_note": "=1+2"})
        events.append(e)
    return events


def _build(tmp_path: Path, events: list[PersonEvent], **options: Any) -> WorkbookResult:
    return build_site_workbook(
        EventListSource(events),
        SITE,
        ReportPeriod.day(DAY, SITE.timezone),
        tmp_path / "site-a.xlsx",
        ReportOptions(**options),
    )


def _workbook_rows(path: Path, spots: list[str]) -> list[list[Any]]:
    wb = load_workbook(path)
    rows = []
    for spot in spots:
        for row in wb[spot].iter_rows(min_row=2, max_col=len(PERSON_COLUMNS), values_only=True):
            if row[0] is None:
                break
            rows.append([spot, *row])
    return rows


def _normalized(rows: list[list[Any]]) -> list[list[Any]]:
    """Cells as comparable values: times to the millisecond, numbers as the workbook rounds them,
    empty cells as None."""
    out = []
    for row in rows:
        cells: list[Any] = []
        columns: list[Column | None] = [None, *PERSON_COLUMNS]  # the spot first
        for col, value in zip(columns, row, strict=True):
            if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
                cells.append(None)
            elif isinstance(value, datetime):
                cells.append(pd.Timestamp(value).round("ms").to_pydatetime())
            elif isinstance(value, float) and col is not None:
                cells.append(round(value, col.decimals))
            else:
                cells.append(value)
        out.append(cells)
    return sorted(out, key=lambda r: (r[0], r[1]))


def test_csv_and_parquet_hold_the_person_lists(tmp_path: Path) -> None:
    result = _build(tmp_path, _events(), batch_size=7)
    csv_path, parquet_path = result.exports
    assert csv_path == tmp_path / "site-a.persons.csv"
    assert parquet_path == tmp_path / "site-a.persons.parquet"
    spots = [s.spot for s in result.spots]
    expected = _normalized(_workbook_rows(result.path, spots))
    assert len(expected) == 20

    table = pq.read_table(parquet_path)
    assert table.column_names == HEADERS
    assert pq.ParquetFile(parquet_path).num_row_groups == 3  # one per frame of 7 events
    parquet = table.to_pandas()
    assert _normalized(parquet.astype(object).values.tolist()) == expected

    csv = pd.read_csv(csv_path, keep_default_na=False, na_values=[""], dtype={"Track": int})
    assert list(csv.columns) == HEADERS
    csv["Local time"] = pd.to_datetime(csv["Local time"])
    csv_rows = _normalized(csv.astype(object).values.tolist())
    # The formula-looking note is quoted in the CSV only (the workbook quotes it with a style).
    noted = [r for r in csv_rows if r[-1] is not None]
    assert [r[-1] for r in noted] == ["'=1+2"]
    assert parquet["Note"].dropna().tolist() == ["=1+2"]
    noted[0][-1] = "=1+2"
    assert csv_rows == expected
    assert not list(tmp_path.glob("*.partial"))


def test_no_exports_when_switched_off(tmp_path: Path) -> None:
    result = _build(tmp_path, _events(), exports=False)
    assert result.exports == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-a.xlsx"]


def test_an_empty_period_exports_the_header_only(tmp_path: Path) -> None:
    result = _build(tmp_path, [])
    csv_path, parquet_path = result.exports
    assert csv_path.read_text(encoding="utf-8").splitlines() == [",".join(HEADERS)]
    table = pq.read_table(parquet_path)
    assert table.num_rows == 0 and table.column_names == HEADERS


class _BrokenSource(EventListSource):
    """Fails after its first frame, as a store connection lost mid-report."""

    def iter_event_frames(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        frames = super().iter_event_frames(site, start_utc, end_utc, batch_size)
        yield next(frames)
        raise ConnectionError("store went away")


def test_a_failed_build_leaves_no_partial_exports(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError):
        build_site_workbook(
            _BrokenSource(_events()),
            SITE,
            ReportPeriod.day(DAY, SITE.timezone),
            tmp_path / "site-a.xlsx",
            ReportOptions(batch_size=5),
        )
    assert list(tmp_path.iterdir()) == []

"""The workbook reading a real store: frames equal to those made from the events themselves, and
a workbook built end to end from SQLite."""

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook

from aggregator.report.period import ReportPeriod
from aggregator.report.source import events_to_frame
from aggregator.report.workbook import ReportOptions, SiteReportInfo, build_site_workbook
from aggregator.store import EventStore, StatusRecord, StoredEvent
from aggregator.store.report_source import StoreReportSource
from footfall.contract import Channel, PersonEvent
from footfall.contract.examples import example_status, random_events

DAY = date(2026, 5, 1)
PERIOD = ReportPeriod.day(DAY, "Europe/Berlin")


def _store(tmp_path: Path) -> tuple[EventStore, list[PersonEvent]]:
    store = EventStore.open(f"sqlite:///{tmp_path / 'r.db'}")
    events = random_events(
        500, rng=random.Random(4), spots=("spot-1", "spot-2"), start=PERIOD.start_utc, span_hours=24
    )
    store.add_events([StoredEvent(e, datetime.now(UTC), "test") for e in events])
    return store, events


def test_frames_match_the_events(tmp_path: Path) -> None:
    store, events = _store(tmp_path)
    source = StoreReportSource(store)
    frames = list(source.iter_event_frames("site-a", PERIOD.start_utc, PERIOD.end_utc, 200))
    assert [len(f) for f in frames] == [200, 200, 100]
    got = pd.concat(frames, ignore_index=True)
    expected = events_to_frame(sorted(events, key=lambda e: (e.first_seen, str(e.event_id))))
    pd.testing.assert_frame_equal(
        got.sort_values("event_id").reset_index(drop=True),
        expected.sort_values("event_id").reset_index(drop=True),
        check_dtype=False,
    )
    assert str(got["first_seen"].dt.tz) == "UTC"


def test_coverage_is_none_without_any_status_and_agents_are_described(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    source = StoreReportSource(store)
    assert source.coverage_intervals("site-a", PERIOD.start_utc, PERIOD.end_utc) is None
    t = PERIOD.start_utc + timedelta(hours=8)
    store.record_statuses(
        [
            StatusRecord(
                Channel.HEARTBEAT, example_status(sent_at=t + timedelta(seconds=30 * i)), t
            )
            for i in range(121)
        ]
    )
    coverage = source.coverage_intervals("site-a", PERIOD.start_utc, PERIOD.end_utc)
    assert coverage == {"spot-1": [(t, t + timedelta(hours=1))]}
    (info,) = source.agents("site-a")
    assert (info.agent, info.spot, info.state) == ("agent-1", "spot-1", "online")
    assert info.models == "yunet 2023mar, cydral-gender 1, cydral-age 1"


def test_a_workbook_builds_from_the_store(tmp_path: Path) -> None:
    store, events = _store(tmp_path)
    out = tmp_path / "site-a.xlsx"
    result = build_site_workbook(
        StoreReportSource(store),
        SiteReportInfo("site-a", "Site A", "Europe/Berlin"),
        PERIOD,
        out,
        ReportOptions(tmpdir=tmp_path),
    )
    inside = [e for e in events if PERIOD.start_utc <= e.first_seen < PERIOD.end_utc]
    assert result.people == len(inside)
    assert {"Summary", "spot-1", "spot-2"} <= set(load_workbook(out, read_only=True).sheetnames)

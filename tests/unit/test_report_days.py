"""Which day a report is about and in which zone: a site's time zone from the store when no
configuration names it, a partial day delivered only when allowed and marked in the workbook,
and the scheduler saying when each site's next delivery runs."""

import logging
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.config import AggregatorConfig
from aggregator.delivery import jobs
from aggregator.delivery.deliver import Deliverer, DeliverySite
from aggregator.delivery.schedule import NightlyScheduler, SiteSchedule, describe_next_run
from aggregator.delivery.settings import DeliverySettings
from aggregator.errors import PartialDayError
from aggregator.report.source import EventListSource
from aggregator.store import EventStore
from aggregator.store.report_source import StoreReportSource
from aggregator.store.rows import StoredEvent
from aggregator.store.sites import SiteRecord, SitesTable
from footfall.contract.examples import example_event
from footfall.objectstore import MemoryObjectStore

runner = CliRunner()
T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)


def test_sites_are_registered_and_updated(store: EventStore) -> None:
    table = SitesTable(store.engine)
    assert table.get("site-a") is None
    table.register([SiteRecord("site-a", "Site A", "Europe/Berlin"), SiteRecord("b", None, "UTC")])
    assert table.get("site-a") == SiteRecord("site-a", "Site A", "Europe/Berlin")
    table.register([SiteRecord("site-a", None, "America/New_York")])
    assert table.get("site-a") == SiteRecord("site-a", None, "America/New_York")
    assert table.get("b") == SiteRecord("b", None, "UTC")


def _events_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = EventStore.open(url)
    # 23:30 UTC on 3 May is 01:30 on 4 May in Berlin: the zone decides the day.
    events = [example_event(spot="north", first_seen=T0 - timedelta(hours=6, minutes=30))]
    events += [example_event(spot="north", first_seen=T0 + timedelta(minutes=i)) for i in range(4)]
    store.add_events([StoredEvent(e, T0, "test") for e in events])
    store.close()
    return url


def _report(url: str, out: Path, *extra: str) -> str:
    args = ["report", "--site", "site-a", "--store", url, "--out", str(out), *extra]
    result = runner.invoke(app, [*args, "--date", "2026-05-04"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_report_without_configuration_takes_the_zone_registered_in_the_store(
    tmp_path: Path,
) -> None:
    url = _events_store(tmp_path)
    out = tmp_path / "r.xlsx"
    assert _report(url, out) == f"{out}: 4 people at 1 spots, 2026-05-04 (UTC)"
    cfg = AggregatorConfig.model_validate(
        {"sites": [{"id": "site-a", "name": "Site A", "timezone": "Europe/Berlin"}]}
    )
    store = EventStore.open(url)
    jobs.register_sites(cfg, store)
    store.close()
    assert _report(url, out) == f"{out}: 5 people at 1 spots, 2026-05-04 (Europe/Berlin)"
    about = {r[0]: r[1] for r in load_workbook(out)["About"].iter_rows(values_only=True)}
    assert about["Site name"] == "Site A" and about["Time zone"] == "Europe/Berlin"
    # --timezone still wins.
    line = _report(url, out, "--timezone", "UTC")
    assert line == f"{out}: 4 people at 1 spots, 2026-05-04 (UTC)"


def _about(path: Path) -> dict[str, object]:
    return {r[0]: r[1] for r in load_workbook(path)["About"].iter_rows(values_only=True) if r[0]}


def test_a_report_reaching_into_the_present_says_it_is_partial(tmp_path: Path) -> None:
    url = _events_store(tmp_path)
    store = EventStore.open(url)
    site = jobs.site_info(AggregatorConfig(), "site-a", "Europe/Berlin")
    now = datetime(2026, 5, 4, 12, 34, tzinfo=UTC)
    try:
        partial = jobs.build_report(
            store, site, date(2026, 5, 4), date(2026, 5, 4), tmp_path / "p.xlsx", now=now
        )
        whole = jobs.build_report(
            store, site, date(2026, 5, 3), date(2026, 5, 3), tmp_path / "w.xlsx", now=now
        )
    finally:
        store.close()
    assert partial.partial_until == now and whole.partial_until is None
    assert _about(tmp_path / "p.xlsx")["Partial day"] == (
        "the period was not over when this workbook was made: data up to 2026-05-04 14:34 "
        "local time only"
    )
    assert "Partial day" not in _about(tmp_path / "w.xlsx")


def test_report_for_today_prints_that_it_is_partial(tmp_path: Path) -> None:
    url = _events_store(tmp_path)
    out = tmp_path / "today.xlsx"
    today = datetime.now(UTC).date()
    args = ["report", "--site", "site-a", "--store", url, "--out", str(out), "--timezone", "UTC"]
    result = runner.invoke(app, [*args, "--date", f"{today}"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("  partial day: ")]
    assert line.startswith("  partial day: the period was not over when this workbook was made")
    assert "Partial day" in _about(out)


def _config(tmp_path: Path) -> Path:
    (tmp_path / "s3.secret").write_text("SK\n", encoding="utf-8")
    cfg = tmp_path / "agg.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "f.db"}"\n[s3]\nbucket = "reports"\n'
        # Credentials, so that the setup checks pass and the day's own check is reached.
        f'access_key_id = "AK"\nsecret_access_key_file = "{tmp_path / "s3.secret"}"\n'
        '[delivery]\nattempts = 1\n[[sites]]\nid = "site-a"\ntimezone = "Pacific/Kiritimati"\n',
        encoding="utf-8",
    )
    return cfg


def test_deliver_refuses_a_day_not_over_yet_without_allow_partial(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    result = runner.invoke(app, ["deliver", "--config", str(cfg), "--date", f"{today}"])
    assert result.exit_code == 2, result.output
    ends = datetime.combine(today + timedelta(days=1), time(0))
    assert result.stderr == (
        f"error: {today} is not over yet at site site-a (Pacific/Kiritimati): it ends at "
        f"{ends:%Y-%m-%d %H:%M}; give --allow-partial to deliver what there is so far\n"
    )


def test_deliver_sites_with_allow_partial_marks_the_workbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _events_store(tmp_path)
    cfg = AggregatorConfig.model_validate(
        {
            "store": {"url": url},
            "s3": {"bucket": "reports"},
            "delivery": {"attempts": 1, "work_dir": str(tmp_path / "work")},
            "sites": [{"id": "site-a", "timezone": "Europe/Berlin"}],
        }
    )
    objects = MemoryObjectStore()
    assert cfg.delivery is not None
    settings = cfg.delivery

    def deliverer(_config: AggregatorConfig, store: EventStore) -> Deliverer:
        # The real one, on an object store in memory instead of S3.
        return Deliverer(StoreReportSource(store), objects, settings)

    monkeypatch.setattr(jobs, "make_deliverer", deliverer)
    now = datetime(2026, 5, 4, 12, 34, tzinfo=UTC)
    store = EventStore.open(url)
    try:
        with pytest.raises(PartialDayError, match="2026-05-04 is not over yet at site site-a"):
            jobs.deliver_sites(cfg, store, day=date(2026, 5, 4), now=now)
        assert objects.objects == {}
        (outcome,) = jobs.deliver_sites(
            cfg, store, day=date(2026, 5, 4), allow_partial=True, now=now
        )
        # A finished day needs no permission, and says nothing about being partial.
        (yesterday,) = jobs.deliver_sites(cfg, store, day=date(2026, 5, 3), now=now)
        registered = SitesTable(store.engine).get("site-a")
    finally:
        store.close()
    assert outcome.ok and outcome.people == 5 and outcome.key is not None
    path = tmp_path / "delivered.xlsx"
    path.write_bytes(objects.objects[outcome.key][0])
    assert str(_about(path)["Partial day"]).endswith("data up to 2026-05-04 14:34 local time only")
    assert yesterday.ok and yesterday.key is not None
    path.write_bytes(objects.objects[yesterday.key][0])
    assert "Partial day" not in _about(path)
    assert registered == SiteRecord("site-a", None, "Europe/Berlin")


def test_a_partial_delivery_says_so_in_the_mail(tmp_path: Path) -> None:
    sent = []

    class Mailer:
        def send(self, mail: object) -> None:
            sent.append(mail)

    at = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    deliverer = Deliverer(
        EventListSource([example_event(first_seen=at)]),
        MemoryObjectStore(),
        DeliverySettings(work_dir=tmp_path),
        mailer=Mailer(),
    )
    site = DeliverySite("site-a", None, "Europe/Berlin", ("a@example.net",))
    deliverer.deliver(site, date(2026, 5, 4), partial_until=at + timedelta(hours=1))
    assert "Partial day: the period was not over when this workbook was made: data up to " in (
        sent[0].body  # type: ignore[attr-defined]
    )
    assert "2026-05-04 11:00 local time only." in sent[0].body  # type: ignore[attr-defined]


def test_scheduler_logs_each_site_s_next_run(caplog: pytest.LogCaptureFixture) -> None:
    berlin = SiteSchedule("site-a", ZoneInfo("Europe/Berlin"), time(6, 0))
    tokyo = SiteSchedule("site-b", ZoneInfo("Asia/Tokyo"), time(1, 30))
    now = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)
    assert describe_next_run(berlin, datetime(2026, 5, 4, 4, 0, tzinfo=UTC)) == (
        "site-a: next nightly delivery 2026-05-04 06:00 Europe/Berlin (2026-05-04 04:00 UTC), "
        "for 2026-05-03"
    )
    ran: list[tuple[str, date]] = []
    clock = {"now": now}

    done = threading.Event()

    def wait(seconds: float) -> bool:
        if ran:
            done.set()
            return True  # as if stopped: one run is all this test needs
        clock["now"] += timedelta(seconds=seconds)
        return False

    scheduler = NightlyScheduler(
        [berlin, tokyo], lambda site, day: ran.append((site, day)), lambda: clock["now"], wait
    )
    with caplog.at_level(logging.INFO, logger="aggregator.delivery.schedule"):
        scheduler.start()
        assert done.wait(10)
        scheduler.stop()
    lines = [r.getMessage() for r in caplog.records if "next nightly delivery" in r.getMessage()]
    assert ran == [("site-a", date(2026, 5, 3))]
    assert lines == [
        "site-a: next nightly delivery 2026-05-04 06:00 Europe/Berlin (2026-05-04 04:00 UTC), "
        "for 2026-05-03",
        "site-b: next nightly delivery 2026-05-05 01:30 Asia/Tokyo (2026-05-04 16:30 UTC), "
        "for 2026-05-04",
        # After Berlin's run, its next one.
        "site-a: next nightly delivery 2026-05-05 06:00 Europe/Berlin (2026-05-05 04:00 UTC), "
        "for 2026-05-04",
    ]

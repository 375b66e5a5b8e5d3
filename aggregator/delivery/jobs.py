"""What the ``report`` and ``deliver`` commands and the service's scheduler run, from config."""

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.config import AggregatorConfig, SiteSettings
from aggregator.delivery.crops import s3_crop_reader
from aggregator.delivery.deliver import Deliverer, DeliveryOutcome, DeliverySite
from aggregator.delivery.mail import SmtpMailer
from aggregator.delivery.schedule import NightlyScheduler, SiteSchedule
from aggregator.errors import PartialDayError
from aggregator.report.period import ReportPeriod
from aggregator.report.thumbnails import DEFAULT_PER_SHEET, CropReader
from aggregator.report.workbook import (
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from aggregator.store import EventStore
from aggregator.store.deliveries import DeliveryLogTable
from aggregator.store.report_source import StoreReportSource
from aggregator.store.sites import SiteRecord, SitesTable
from footfall.objectstore import S3ObjectStore

log = logging.getLogger(__name__)


def yesterday(tz: str, now: datetime | None = None) -> date:
    """The local day that ended most recently in time zone ``tz``."""
    now = now or datetime.now(UTC)
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def site_info(
    config: AggregatorConfig,
    site_id: str,
    timezone: str | None = None,
    registered: SiteRecord | None = None,
) -> SiteReportInfo:
    """The site as configured; else as an aggregator's configuration registered it in the
    store (``registered``, see :func:`registered_site`); else an ad-hoc one (e.g. replayed
    clips). ``timezone`` overrides the zone; without any, UTC."""
    try:
        site = config.site(site_id)
    except KeyError:
        if registered is not None:
            return SiteReportInfo(site_id, registered.name, timezone or registered.timezone)
        return SiteReportInfo(site_id, None, timezone or "UTC")
    return SiteReportInfo(site.id, site.name, timezone or site.timezone)


def registered_site(store: EventStore, site_id: str) -> SiteRecord | None:
    return SitesTable(store.engine).get(site_id)


def register_sites(config: AggregatorConfig, store: EventStore) -> None:
    """Write the configured sites (name, time zone) into the store, for commands run without
    this configuration."""
    SitesTable(store.engine).register([SiteRecord(s.id, s.name, s.timezone) for s in config.sites])


def partial_until(period: ReportPeriod, now: datetime) -> datetime | None:
    """``now`` when the period has begun but not ended (its data is partial), else None."""
    return now if period.start_utc <= now < period.end_utc else None


def check_day_over(site: SiteSettings, day: date, now: datetime) -> None:
    """Raise :class:`PartialDayError` unless ``day`` has ended at ``site``."""
    period = ReportPeriod.day(day, site.timezone)
    if now < period.end_utc:
        ends = period.end_utc.astimezone(period.tz)
        raise PartialDayError(
            f"{day} is not over yet at site {site.id} ({site.timezone}): it ends at "
            f"{ends:%Y-%m-%d %H:%M}; give --allow-partial to deliver what there is so far"
        )


def build_report(
    store: EventStore,
    site: SiteReportInfo,
    first: date,
    last: date,
    out: Path,
    crop_link_base: str | None = None,
    crop_reader: CropReader | None = None,
    pictures_per_sheet: int = DEFAULT_PER_SHEET,
    now: datetime | None = None,
) -> WorkbookResult:
    """The workbook for ``first`` to ``last``; one that reaches into the present says up to
    when it has data (``now``, default the clock)."""
    period = ReportPeriod(ZoneInfo(site.timezone), first, last)
    options = ReportOptions(
        crop_link_base=crop_link_base,
        crop_reader=crop_reader,
        pictures_per_sheet=pictures_per_sheet,
        partial_until=partial_until(period, now or datetime.now(UTC)),
    )
    return build_site_workbook(StoreReportSource(store), site, period, out, options)


def _delivery_site(site: SiteSettings) -> DeliverySite:
    return DeliverySite(site.id, site.name, site.timezone, tuple(site.email_to))


def make_deliverer(config: AggregatorConfig, store: EventStore) -> Deliverer:
    if config.delivery is None or config.s3 is None:
        raise ValueError("delivery needs [delivery] and [s3] in the configuration")
    mailer = SmtpMailer(config.delivery.smtp) if config.delivery.smtp is not None else None
    return Deliverer(
        StoreReportSource(store),
        S3ObjectStore(config.s3),
        config.delivery,
        mailer=mailer,
        delivery_log=DeliveryLogTable(store.engine),
        crop_reader=s3_crop_reader(config.s3, config.delivery.crop_bucket),
    )


def deliver_sites(
    config: AggregatorConfig,
    store: EventStore,
    *,
    day: date | None = None,
    site_ids: list[str] | None = None,
    allow_partial: bool = False,
    now: datetime | None = None,
) -> list[DeliveryOutcome]:
    """Deliver each chosen site's workbook for ``day`` (default: each site's local yesterday).

    A day not over yet at a site raises :class:`PartialDayError` before anything is delivered,
    unless ``allow_partial``: the workbook then says up to when it has data."""
    now = now or datetime.now(UTC)
    chosen = [config.site(s) for s in site_ids] if site_ids else config.sites
    if day is not None and not allow_partial:
        for site in chosen:
            check_day_over(site, day, now)
    deliverer = make_deliverer(config, store)
    register_sites(config, store)
    outcomes = []
    for s in chosen:
        target = day or yesterday(s.timezone, now)
        partial = partial_until(ReportPeriod.day(target, s.timezone), now)
        if partial is not None:
            log.warning("delivering %s for %s, a day not over yet: data up to now", s.id, target)
        outcomes.append(deliverer.deliver(_delivery_site(s), target, partial_until=partial))
    return outcomes


def nightly_scheduler(
    config: AggregatorConfig,
    store: EventStore,
    on_outcome: Callable[[DeliveryOutcome], None] | None = None,
) -> NightlyScheduler | None:
    """A scheduler delivering every site at its local ``deliver_at``, or None without delivery
    (or with ``delivery.in_service = false``)."""
    if config.delivery is None or not config.sites or not config.delivery.in_service:
        return None
    deliverer = make_deliverer(config, store)
    sites = {s.id: s for s in config.sites}

    def job(site_id: str, day: date) -> DeliveryOutcome:
        outcome = deliverer.deliver(_delivery_site(sites[site_id]), day)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    schedules = [SiteSchedule(s.id, ZoneInfo(s.timezone), s.deliver_at) for s in config.sites]
    return NightlyScheduler(schedules, job)

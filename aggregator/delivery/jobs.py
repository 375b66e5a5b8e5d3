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
from footfall.objectstore import S3ObjectStore

log = logging.getLogger(__name__)


def yesterday(tz: str, now: datetime | None = None) -> date:
    """The local day that ended most recently in time zone ``tz``."""
    now = now or datetime.now(UTC)
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def site_info(
    config: AggregatorConfig, site_id: str, timezone: str | None = None
) -> SiteReportInfo:
    """The configured site, or an ad-hoc one (e.g. replayed clips) in ``timezone`` or UTC."""
    try:
        site = config.site(site_id)
    except KeyError:
        return SiteReportInfo(site_id, None, timezone or "UTC")
    return SiteReportInfo(site.id, site.name, timezone or site.timezone)


def build_report(
    store: EventStore,
    site: SiteReportInfo,
    first: date,
    last: date,
    out: Path,
    crop_link_base: str | None = None,
    crop_reader: CropReader | None = None,
    pictures_per_sheet: int = DEFAULT_PER_SHEET,
) -> WorkbookResult:
    period = ReportPeriod(ZoneInfo(site.timezone), first, last)
    options = ReportOptions(
        crop_link_base=crop_link_base,
        crop_reader=crop_reader,
        pictures_per_sheet=pictures_per_sheet,
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
) -> list[DeliveryOutcome]:
    """Deliver each chosen site's workbook for ``day`` (default: each site's local yesterday)."""
    deliverer = make_deliverer(config, store)
    chosen = [config.site(s) for s in site_ids] if site_ids else config.sites
    return [deliverer.deliver(_delivery_site(s), day or yesterday(s.timezone)) for s in chosen]


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

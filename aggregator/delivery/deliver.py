"""Build a site's workbook for one local day, upload it, link it, mail the link; retry on failure.

Every attempt ends in a :class:`DeliveryOutcome` handed to the delivery log, so a failed night is
on record (and the command exits non-zero) rather than silently skipped. The workbook is uploaded
with one PUT under a key fixed by site and day: running a delivery again replaces the report
atomically - readers get the old object or the new one, never a mixture.
"""

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from aggregator.delivery.mail import Mail, Mailer
from aggregator.delivery.settings import DeliverySettings
from aggregator.report.about import partial_note
from aggregator.report.period import ReportPeriod
from aggregator.report.source import ReportSource
from aggregator.report.thumbnails import CropReader
from aggregator.report.workbook import (
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from footfall import __version__
from footfall.objectstore import ObjectStore

log = logging.getLogger(__name__)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class DeliverySite:
    id: str
    name: str | None
    timezone: str
    email_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryOutcome:
    site: str
    day: date
    ok: bool
    attempts: int
    key: str | None
    url: str | None
    url_expires_at: datetime | None
    people: int
    emailed: tuple[str, ...]
    error: str | None
    finished_at: datetime


class DeliveryLog(Protocol):
    def record_delivery(self, outcome: DeliveryOutcome) -> None: ...


def report_key(prefix: str, site: str, day: date) -> str:
    return f"{prefix}/{site}/{day:%Y-%m-%d}/{site}_{day:%Y-%m-%d}.xlsx"


class Deliverer:
    def __init__(
        self,
        source: ReportSource,
        store: ObjectStore,
        settings: DeliverySettings,
        *,
        mailer: Mailer | None = None,
        delivery_log: DeliveryLog | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        crop_reader: CropReader | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.settings = settings
        self.mailer = mailer
        self.delivery_log = delivery_log
        self.sleep = sleep
        self.clock = clock
        self.crop_reader = crop_reader

    def deliver(
        self, site: DeliverySite, day: date, *, partial_until: datetime | None = None
    ) -> DeliveryOutcome:
        """``partial_until``: the day is not over; the workbook says it has data up to then."""
        key = report_key(self.settings.key_prefix, site.id, day)
        delay = self.settings.retry_delay_seconds
        error: str | None = None
        people = 0
        for attempt in range(1, self.settings.attempts + 1):
            try:
                people, url, expires, emailed = self._attempt(site, day, key, partial_until)
            except Exception as exc:  # a night's delivery must be reported, whatever broke
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "delivery of %s for %s, attempt %d/%d failed: %s",
                    site.id,
                    day,
                    attempt,
                    self.settings.attempts,
                    error,
                )
                if attempt < self.settings.attempts:
                    self.sleep(delay)
                    delay *= 2
                continue
            outcome = DeliveryOutcome(
                site.id, day, True, attempt, key, url, expires, people, emailed, None, self.clock()
            )
            break
        else:
            outcome = DeliveryOutcome(
                site.id,
                day,
                False,
                self.settings.attempts,
                None,
                None,
                None,
                people,
                (),
                error,
                self.clock(),
            )
            log.error(
                "delivery of %s for %s failed after %d attempts: %s",
                site.id,
                day,
                self.settings.attempts,
                error,
            )
        if self.delivery_log is not None:
            self.delivery_log.record_delivery(outcome)
        return outcome

    def _attempt(
        self, site: DeliverySite, day: date, key: str, partial_until: datetime | None = None
    ) -> tuple[int, str, datetime, tuple[str, ...]]:
        period = ReportPeriod.day(day, site.timezone)
        work_root = self.settings.work_dir
        if work_root is not None:
            work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="delivery-", dir=work_root) as work:
            path = Path(work) / Path(key).name
            result = build_site_workbook(
                self.source,
                SiteReportInfo(site.id, site.name, site.timezone),
                period,
                path,
                ReportOptions(
                    crop_link_base=self.settings.crop_link_base,
                    tmpdir=Path(work),
                    crop_reader=self.crop_reader,
                    pictures_per_sheet=self.settings.pictures_per_sheet,
                    partial_until=partial_until,
                ),
            )
            # The person list exports go beside the workbook, before it: the workbook's object
            # is what a delivery is recognised by.
            export_keys = [export_key(key, p) for p in result.exports]
            for file, export in zip(result.exports, export_keys, strict=True):
                self.store.put_file(
                    export,
                    file,
                    content_type=EXPORT_TYPES.get(file.suffix, "application/octet-stream"),
                    metadata={"site": site.id, "day": f"{day:%Y-%m-%d}"},
                )
            self.store.put_file(
                key,
                path,
                content_type=XLSX_TYPE,
                metadata={
                    "site": site.id,
                    "day": f"{day:%Y-%m-%d}",
                    "timezone": site.timezone,
                    "people": str(result.people),
                    "software": __version__,
                },
            )
        expiry = int(self.settings.link_expiry_hours * 3600)
        url = self.store.presigned_get(key, expiry)
        export_urls = [self.store.presigned_get(k, expiry) for k in export_keys]
        expires = self.clock() + timedelta(seconds=expiry)
        emailed: tuple[str, ...] = ()
        if self.mailer is not None and site.email_to:
            self.mailer.send(compose_mail(site, result, url, expires, export_urls))
            emailed = site.email_to
        log.info("delivered %s for %s: %d people -> %s", site.id, day, result.people, key)
        return result.people, url, expires, emailed


def export_key(workbook_key: str, export: Path) -> str:
    """The object key of an export file, in the workbook's folder."""
    return f"{workbook_key.rpartition('/')[0]}/{export.name}"


def compose_mail(
    site: DeliverySite,
    result: WorkbookResult,
    url: str,
    expires: datetime,
    export_urls: Sequence[str] = (),
) -> Mail:
    name = site.name or site.id
    lines = [
        f"The footfall workbook for {name} ({site.id}), {result.period.describe()}, is ready:",
        "",
        url,
        "",
        f"The link is valid until {expires:%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    if export_urls:
        lines += ["The person list as CSV and Parquet (valid as long):", *export_urls, ""]
    lines += [
        f"People counted: {result.people}",
    ]
    for s in result.spots:
        women = f"{s.women_share:.0%} women" if s.women_share is not None else "gender n/a"
        lines.append(f"  #{s.rank} {s.spot}: {s.people} people, {women}")
    if result.empty_reason:
        lines += ["", f"No data: {result.empty_reason}"]
    if result.partial_until is not None:
        lines += ["", f"Partial day: {partial_note(result.partial_until, result.period)}."]
    return Mail(
        site.email_to,
        f"Footfall report {name} {result.period.first:%Y-%m-%d}",
        "\n".join(lines) + "\n",
    )

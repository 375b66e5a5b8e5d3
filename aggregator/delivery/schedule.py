"""When each site's nightly delivery runs: at a local time, for the local day that just ended."""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteSchedule:
    site: str
    tz: ZoneInfo
    at: time  # local wall-clock time of the delivery


def next_run(schedule: SiteSchedule, after_utc: datetime) -> datetime:
    """The first delivery instant strictly after ``after_utc`` (UTC).

    A local time that does not exist on a spring-forward day runs at the first instant after the
    gap; a time that occurs twice on a fall-back day runs once, at its first occurrence.
    """
    local_day = after_utc.astimezone(schedule.tz).date()
    for offset in range(0, 3):
        day = local_day + timedelta(days=offset)
        candidate = _local_instant(day, schedule.at, schedule.tz)
        if candidate > after_utc:
            return candidate
    raise AssertionError("unreachable: a local time occurs within three days")


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    naive = datetime.combine(day, at)
    utc = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return utc
    # ``naive`` falls in a spring-forward gap: move back to the end of the gap, the first
    # instant whose local time is past the wanted one.
    step = timedelta(minutes=1)
    while (utc - step).astimezone(tz).replace(tzinfo=None) > naive:
        utc -= step
    return utc


def report_day(schedule: SiteSchedule, run_utc: datetime) -> date:
    """The local day a run at ``run_utc`` reports on: the day before the run's local date."""
    return run_utc.astimezone(schedule.tz).date() - timedelta(days=1)


class NightlyScheduler:
    """Runs ``job(site, day)`` for each site at its local delivery time, in a daemon thread.

    A run that raises is logged and does not stop the others; the delivery job itself retries
    and records failures.
    """

    def __init__(
        self,
        schedules: list[SiteSchedule],
        job: Callable[[str, date], object],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.schedules = schedules
        self.job = job
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nightly-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        now = self.clock()
        due = {s.site: next_run(s, now) for s in self.schedules}
        by_site = {s.site: s for s in self.schedules}
        while not self._stop.is_set() and due:
            site, when = min(due.items(), key=lambda kv: kv[1])
            wait = (when - self.clock()).total_seconds()
            if wait > 0 and self._stop.wait(min(wait, 60.0)):
                return
            if self.clock() < when:
                continue
            day = report_day(by_site[site], when)
            log.info("nightly delivery of %s for %s", site, day)
            try:
                self.job(site, day)
            except Exception:
                log.exception("nightly delivery of %s for %s failed", site, day)
            due[site] = next_run(by_site[site], when)

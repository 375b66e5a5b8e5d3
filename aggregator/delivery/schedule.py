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
    and records failures. Each site's next run is logged when the scheduler starts and after
    each of its runs. ``clock`` and ``wait`` (seconds -> True when stopped) are for tests.
    """

    def __init__(
        self,
        schedules: list[SiteSchedule],
        job: Callable[[str, date], object],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.schedules = schedules
        self.job = job
        self.clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
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
        for schedule in self.schedules:
            log_next_run(schedule, due[schedule.site])
        while not self._stop.is_set() and due:
            site, when = min(due.items(), key=lambda kv: kv[1])
            wait = (when - self.clock()).total_seconds()
            if wait > 0 and self._wait(min(wait, 60.0)):
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
            log_next_run(by_site[site], due[site])


def describe_next_run(schedule: SiteSchedule, when_utc: datetime) -> str:
    """``site-a: next nightly delivery 2026-05-02 06:00 Europe/Berlin (04:00 UTC), for
    2026-05-01``."""
    local = when_utc.astimezone(schedule.tz)
    return (
        f"{schedule.site}: next nightly delivery {local:%Y-%m-%d %H:%M} {schedule.tz.key} "
        f"({when_utc.astimezone(UTC):%Y-%m-%d %H:%M} UTC), for {report_day(schedule, when_utc)}"
    )


def log_next_run(schedule: SiteSchedule, when_utc: datetime) -> None:
    log.info("%s", describe_next_run(schedule, when_utc))

"""Report periods in a site's local time, and the hour slots traffic is counted in.

A local day is not always 24 hours: on a daylight-saving change it has 23 or 25. A single-day
report therefore counts in the day's real hours (the repeated hour of an autumn change appears
twice, labelled with its zone abbreviation); a multi-day report counts by local clock hour (00-23)
summed over the days.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from footfall.contract.types import EARLIEST_TIMESTAMP, END_OF_TIMESTAMPS

_HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)

FIRST_DAY = EARLIEST_TIMESTAMP.date()
LAST_DAY = (END_OF_TIMESTAMPS - timedelta(days=1)).date()


def check_day(day: date) -> date:
    """``day`` if a report may cover it: within the days the contract allows events on, so the
    period's bounds in any time zone stay far from what ``datetime`` can hold."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(
            f"{day:%Y-%m-%d} is outside the days events can have ({FIRST_DAY} to {LAST_DAY})"
        )
    return day


@dataclass(frozen=True)
class ReportPeriod:
    """Local dates ``first``..``last`` (inclusive) of a site in time zone ``tz``."""

    tz: ZoneInfo
    first: date
    last: date
    start_utc: datetime = field(init=False)
    end_utc: datetime = field(init=False)

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"period ends ({self.last}) before it starts ({self.first})")
        check_day(self.first)
        check_day(self.last)
        start = datetime.combine(self.first, datetime.min.time(), self.tz).astimezone(UTC)
        end = datetime.combine(
            self.last + timedelta(days=1), datetime.min.time(), self.tz
        ).astimezone(UTC)
        object.__setattr__(self, "start_utc", start)
        object.__setattr__(self, "end_utc", end)

    @classmethod
    def day(cls, day: date, tz: str | ZoneInfo) -> "ReportPeriod":
        return cls(tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz), day, day)

    @property
    def single_day(self) -> bool:
        return self.first == self.last

    @property
    def hours(self) -> float:
        return (self.end_utc - self.start_utc).total_seconds() / 3600

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def quarters(self) -> int:
        """Quarter-hour bins from the period's start (UTC-based, so a daylight-saving day has
        92 or 100)."""
        return round(self.hours * 4)

    def quarter_start(self, k: int) -> datetime:
        """Local (aware) start of quarter-hour bin ``k``."""
        return (self.start_utc + k * QUARTER).astimezone(self.tz)

    def quarter_index(self, utc_times: pd.Series) -> np.ndarray:
        """Quarter-hour bin of each UTC timestamp; -1 outside the period."""
        inside = (utc_times >= self.start_utc) & (utc_times < self.end_utc)
        offset = (utc_times - self.start_utc) // pd.Timedelta(minutes=15)
        idx = offset.to_numpy(dtype=np.int64, na_value=-1)
        result: np.ndarray = np.where(inside.to_numpy(dtype=bool, na_value=False), idx, -1)
        return result

    def describe(self) -> str:
        if self.single_day:
            return f"{self.first:%Y-%m-%d} ({self.tz.key})"
        return f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d} ({self.tz.key})"

    def slot_labels(self) -> list[str]:
        """Labels of the hour slots, in order."""
        if not self.single_day:
            return [f"{h:02d}:00" for h in range(24)]
        starts = [self.start_utc + k * _HOUR for k in range(round(self.hours))]
        local = [s.astimezone(self.tz) for s in starts]
        plain = [t.strftime("%H:%M") for t in local]
        if len(set(plain)) == len(plain) and len(plain) == 24:
            return plain
        # A daylight-saving day: say which side of the change each hour is on.
        return [f"{t:%H:%M} {t.tzname()}" for t in local]

    def slot_index(self, utc_times: pd.Series) -> np.ndarray:
        """Slot of each UTC timestamp (tz-aware series); -1 for times outside the period."""
        inside = (utc_times >= self.start_utc) & (utc_times < self.end_utc)
        if self.single_day:
            offset = (utc_times - self.start_utc) // pd.Timedelta(hours=1)
            idx = offset.to_numpy(dtype=np.int64, na_value=-1)
        else:
            idx = utc_times.dt.tz_convert(self.tz).dt.hour.to_numpy(dtype=np.int64, na_value=-1)
        result: np.ndarray = np.where(inside.to_numpy(dtype=bool, na_value=False), idx, -1)
        return result

    def to_local_naive(self, utc_times: pd.Series) -> pd.Series:
        """Local wall-clock times without zone: what Excel shows as a date."""
        return utc_times.dt.tz_convert(self.tz).dt.tz_localize(None)

"""Counting a stream of event frames into per-spot tallies, in bounded memory.

Each batch is reduced with vectorised numpy (one ``bincount`` per spot), so a million events cost
a few arrays of counts plus one float per person for the median dwell.
"""

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from aggregator.report.period import ReportPeriod
from aggregator.shares.posteriors import age_posteriors, gender_posteriors
from footfall.contract import AGE_GROUPS, AgeGroup, Direction, Gender

# The axes of the counts, in the contract's words; the frames hold their text.
GENDERS: tuple[Gender, ...] = (Gender.FEMALE, Gender.MALE, Gender.UNKNOWN)
AGE_BANDS: tuple[AgeGroup, ...] = (*AGE_GROUPS, AgeGroup.UNKNOWN)
DIRECTIONS: tuple[Direction, ...] = (Direction.IN, Direction.OUT, Direction.PASSED)


def codes(values: pd.Series, categories: tuple[StrEnum, ...]) -> np.ndarray:
    """Index of each value in ``categories``; anything unexpected counts as the last (unknown)."""
    c = pd.Categorical(values, categories=[v.value for v in categories]).codes.astype(np.int64)
    result: np.ndarray = np.where(c < 0, len(categories) - 1, c)
    return result


@dataclass
class SpotTally:
    slots: int
    quarter_bins: int = 0
    day_bins: int = 0
    counts: np.ndarray = field(init=False)  # [slot, gender, age band] -> people
    directions: np.ndarray = field(init=False)  # [in, out, passed]
    # Traffic at finer and coarser grain for the charts: people per quarter hour since the
    # period's start, per local day, and per local weekday x clock hour.
    quarters: np.ndarray = field(init=False)
    days: np.ndarray = field(init=False)
    week_hours: np.ndarray = field(init=False)  # [weekday (Monday = 0), hour]
    dwell_chunks: list[np.ndarray] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)
    # The judged people's posteriors (float32: 40 bytes a person) and the models behind them,
    # for the share estimate.
    gender_chunks: list[np.ndarray] = field(default_factory=list)
    age_chunks: list[np.ndarray] = field(default_factory=list)
    models: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.slots, len(GENDERS), len(AGE_BANDS)), dtype=np.int64)
        self.directions = np.zeros(len(DIRECTIONS), dtype=np.int64)
        self.quarters = np.zeros(self.quarter_bins, dtype=np.int64)
        self.days = np.zeros(self.day_bins, dtype=np.int64)
        self.week_hours = np.zeros((7, 24), dtype=np.int64)

    @property
    def people(self) -> int:
        return int(self.counts.sum())

    def add(self, frame: pd.DataFrame, slot: np.ndarray) -> None:
        """Count ``frame``; it carries ``_quarter``, ``_day``, ``_weekday`` and ``_hour``."""
        self.quarters += np.bincount(frame["_quarter"].to_numpy(), minlength=self.quarter_bins)
        self.days += np.bincount(frame["_day"].to_numpy(), minlength=self.day_bins)
        week = frame["_weekday"].to_numpy() * 24 + frame["_hour"].to_numpy()
        self.week_hours += np.bincount(week, minlength=7 * 24).reshape(7, 24)
        g = codes(frame["gender"], GENDERS)
        a = codes(frame["age_group"], AGE_BANDS)
        flat = (slot * len(GENDERS) + g) * len(AGE_BANDS) + a
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)
        d = codes(frame["direction"], DIRECTIONS)
        self.directions += np.bincount(d, minlength=len(DIRECTIONS))
        self.dwell_chunks.append(frame["dwell_seconds"].to_numpy(dtype=np.float64, copy=True))
        self.agents.update(frame["agent"].unique().tolist())
        self.gender_chunks.append(gender_posteriors(frame))
        self.age_chunks.append(age_posteriors(frame))
        self.models.update(frame["models"].dropna().tolist())

    def gender_posteriors(self) -> np.ndarray:
        return _stacked(self.gender_chunks, 2)

    def age_posteriors(self) -> np.ndarray:
        return _stacked(self.age_chunks, len(AGE_GROUPS))

    def median_dwell(self) -> float | None:
        if not self.dwell_chunks:
            return None
        values = np.concatenate(self.dwell_chunks)
        return float(np.median(values)) if values.size else None


def _stacked(chunks: list[np.ndarray], classes: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, classes), dtype=np.float64)
    return np.concatenate(chunks).astype(np.float64)


@dataclass
class SiteTally:
    """All spots of one site over one period."""

    period: ReportPeriod
    spots: dict[str, SpotTally] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    events: int = 0
    outside: int = 0  # rows the source returned outside the period (should be none)

    def spot(self, name: str) -> SpotTally:
        if name not in self.spots:
            p = self.period
            self.spots[name] = SpotTally(len(p.slot_labels()), p.quarters, p.days)
        return self.spots[name]

    def add(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Count one batch; returns the rows inside the period with their slot in ``_slot``."""
        slot = self.period.slot_index(frame["first_seen"])
        keep = slot >= 0
        self.outside += int((~keep).sum())
        frame = frame.loc[keep].assign(_slot=slot[keep])
        local = frame["first_seen"].dt.tz_convert(self.period.tz)
        first_day = pd.Timestamp(self.period.first)
        frame = frame.assign(
            _quarter=self.period.quarter_index(frame["first_seen"]),
            _day=(local.dt.tz_localize(None).dt.normalize() - first_day).dt.days.to_numpy(),
            _weekday=local.dt.day_of_week.to_numpy(),
            _hour=local.dt.hour.to_numpy(),
        )
        self.events += len(frame)
        self.models.update(frame["models"].dropna().unique().tolist())
        for name, part in frame.groupby("spot", sort=False):
            self.spot(str(name)).add(part, part["_slot"].to_numpy())
        return frame

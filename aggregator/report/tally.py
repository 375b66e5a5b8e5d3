"""Counting a stream of event frames into per-spot tallies, in bounded memory.

Each batch is reduced with vectorised numpy (one ``bincount`` per spot), so a million events cost
a few arrays of counts plus one float per person for the median dwell.
"""

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from aggregator.report.period import ReportPeriod
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
    counts: np.ndarray = field(init=False)  # [slot, gender, age band] -> people
    directions: np.ndarray = field(init=False)  # [in, out, passed]
    dwell_chunks: list[np.ndarray] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.slots, len(GENDERS), len(AGE_BANDS)), dtype=np.int64)
        self.directions = np.zeros(len(DIRECTIONS), dtype=np.int64)

    @property
    def people(self) -> int:
        return int(self.counts.sum())

    def add(self, frame: pd.DataFrame, slot: np.ndarray) -> None:
        g = codes(frame["gender"], GENDERS)
        a = codes(frame["age_group"], AGE_BANDS)
        flat = (slot * len(GENDERS) + g) * len(AGE_BANDS) + a
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)
        d = codes(frame["direction"], DIRECTIONS)
        self.directions += np.bincount(d, minlength=len(DIRECTIONS))
        self.dwell_chunks.append(frame["dwell_seconds"].to_numpy(dtype=np.float64, copy=True))
        self.agents.update(frame["agent"].unique().tolist())

    def median_dwell(self) -> float | None:
        if not self.dwell_chunks:
            return None
        values = np.concatenate(self.dwell_chunks)
        return float(np.median(values)) if values.size else None


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
            self.spots[name] = SpotTally(len(self.period.slot_labels()))
        return self.spots[name]

    def add(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Count one batch; returns the rows inside the period with their slot in ``_slot``."""
        slot = self.period.slot_index(frame["first_seen"])
        keep = slot >= 0
        self.outside += int((~keep).sum())
        frame = frame.loc[keep].assign(_slot=slot[keep])
        self.events += len(frame)
        self.models.update(frame["models"].dropna().unique().tolist())
        for name, part in frame.groupby("spot", sort=False):
            self.spot(str(name)).add(part, part["_slot"].to_numpy())
        return frame

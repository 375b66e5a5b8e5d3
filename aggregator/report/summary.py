"""Per-spot summary figures and the ranking of spots, from tallies and coverage."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from aggregator.report.stats import wilson_interval
from aggregator.report.tally import DIRECTIONS, GENDERS, SiteTally, SpotTally
from aggregator.shares.estimate import ShareEstimate, estimate_shares
from aggregator.shares.registry import ModelCalibration, calibration_for, model_of
from footfall.contract import AGE_GROUPS, Direction, Gender

# The rate rule. A rate per hour extrapolated from a few minutes of footage is mostly noise: one
# group walking past doubles it, and a 9-second clip turns 7 people into "2,800 per hour". Rates
# are therefore shown, and spots ranked by them, only with at least this much footage; below it
# the workbook says "N people in M min of footage" and ranks those spots after the rated ones, by
# people.
MIN_RATE_HOURS = 0.25

# Below this many people with an age judged, the age mix is counted, not estimated: 8 groups'
# shares from a handful of people say more about the estimate's prior (one pseudo-person per
# group) than about the spot - 3 adults would read "10 % aged 0-2".
MIN_AGE_ESTIMATE = 30

_FEMALE, _MALE, _UNKNOWN = (GENDERS.index(g) for g in (Gender.FEMALE, Gender.MALE, Gender.UNKNOWN))
_IN, _OUT, _PASSED = (DIRECTIONS.index(d) for d in (Direction.IN, Direction.OUT, Direction.PASSED))


@dataclass(frozen=True)
class SpotSummary:
    spot: str
    agents: tuple[str, ...]
    people: int
    entered: int
    left: int
    passing: int
    women: int
    men: int
    gender_unknown: int
    women_share: float | None  # of people whose gender is known; corrected where calibrated
    women_ci: tuple[float, float] | None
    men_share: float | None
    men_ci: tuple[float, float] | None
    age_counts: tuple[int, ...]  # the 8 groups then unknown
    age_shares: tuple[float | None, ...]  # the 8 groups, of people whose age is known
    age_unknown_share: float | None  # of all people
    gender_unknown_share: float | None  # of all people
    peak_slot: int | None
    peak_people: int
    median_dwell: float | None
    coverage_hours: float | None  # None: no status information at all
    people_per_hour: float | None  # None below the rate rule (MIN_RATE_HOURS) or with no coverage
    rank: int = 0
    # The shares' provenance: the calibration that corrected them (None: plain counts with a
    # sampling-only interval, as no calibration is known for the model), and the plain count.
    gender_calibration: str | None = None
    age_calibration: str | None = None
    women_counted: float | None = None
    age_intervals: tuple[tuple[float, float] | None, ...] = ()

    @property
    def gender_known(self) -> int:
        return self.women + self.men

    @property
    def age_known(self) -> int:
        return sum(self.age_counts[:-1])

    @property
    def age_estimated(self) -> bool:
        """The age mix is estimated with a 95 % interval per group (else counted: too few
        people with an age judged, or no calibration for the classifier)."""
        return any(i is not None for i in self.age_intervals)

    @property
    def age_group_intervals(self) -> tuple[tuple[float, float] | None, ...]:
        """One interval per age group (None: counted), however the summary was made."""
        n = len(self.age_shares)
        return tuple(
            self.age_intervals[k] if k < len(self.age_intervals) else None for k in range(n)
        )

    @property
    def age_counted_shares(self) -> tuple[float | None, ...]:
        """Each group's share of the people with an age judged, as counted (top labels)."""
        known = self.age_known
        return tuple((c / known if known else None) for c in self.age_counts[:-1])


def merged_hours(intervals: list[tuple[datetime, datetime]]) -> float:
    """Total hours covered by possibly overlapping intervals."""
    total = 0.0
    end: datetime | None = None
    for a, b in sorted(intervals):
        if end is not None and a < end:
            a = end
        if b > a:
            total += (b - a).total_seconds()
            end = b if end is None or b > end else end
    return total / 3600


def summarize_spot(
    name: str,
    tally: SpotTally,
    coverage: list[tuple[datetime, datetime]] | None,
    min_rate_hours: float = MIN_RATE_HOURS,
    site_calibrations: Mapping[str, ModelCalibration] | None = None,
) -> SpotSummary:
    counts = tally.counts
    people = int(counts.sum())
    by_gender = counts.sum(axis=(0, 2))
    by_age = counts.sum(axis=(0, 1))
    women, men, unknown = (int(by_gender[i]) for i in (_FEMALE, _MALE, _UNKNOWN))
    known = women + men
    known_age = int(by_age[:-1].sum())
    per_slot = counts.sum(axis=(1, 2))
    peak = int(np.argmax(per_slot)) if people else None
    hours = merged_hours(coverage) if coverage is not None else None
    women_share = women / known if known else None
    women_ci = wilson_interval(women, known)
    age_shares = tuple((int(x) / known_age if known_age else None) for x in by_age[:-1])
    age_intervals: tuple[tuple[float, float] | None, ...] = (None,) * len(AGE_GROUP_LABELS)
    own = site_calibrations or {}
    gender_est = _estimate("gender", tally, tally.gender_posteriors(), own.get("gender"))
    if gender_est is not None:
        women_share = float(gender_est.share[0])
        women_ci = (float(gender_est.low[0]), float(gender_est.high[0]))
    age_est = _estimate("age", tally, tally.age_posteriors(), own.get("age"))
    if age_est is not None:
        age_shares = tuple(float(v) for v in age_est.share)
        age_intervals = tuple(
            (float(lo), float(hi)) for lo, hi in zip(age_est.low, age_est.high, strict=True)
        )
    return SpotSummary(
        spot=name,
        agents=tuple(sorted(tally.agents)),
        people=people,
        entered=int(tally.directions[_IN]),
        left=int(tally.directions[_OUT]),
        passing=int(tally.directions[_PASSED]),
        women=women,
        men=men,
        gender_unknown=unknown,
        women_share=women_share,
        women_ci=women_ci,
        men_share=men / known if known else None,
        men_ci=wilson_interval(men, known),
        age_counts=tuple(int(x) for x in by_age),
        age_shares=age_shares,
        age_unknown_share=int(by_age[-1]) / people if people else None,
        gender_unknown_share=unknown / people if people else None,
        peak_slot=peak,
        peak_people=int(per_slot[peak]) if peak is not None else 0,
        median_dwell=tally.median_dwell(),
        coverage_hours=hours,
        people_per_hour=(people / hours) if hours and hours >= min_rate_hours else None,
        gender_calibration=gender_est.calibration if gender_est is not None else None,
        age_calibration=age_est.calibration if age_est is not None else None,
        women_counted=women / known if known else None,
        age_intervals=age_intervals,
    )


def _estimate(
    role: str, tally: SpotTally, posteriors: np.ndarray, site: ModelCalibration | None
) -> ShareEstimate | None:
    """The corrected shares of the spot's judged people: with the spot's own site calibration
    when an operator fitted one for the classifier its events name, else the classifier's
    calibration; None (plain counts) when it has none or nobody was judged."""
    named = model_of(role, tally.models)
    model = site if site is not None and site.model == named else calibration_for(role, named)
    if model is None or len(posteriors) == 0:
        return None
    if role == "age" and len(posteriors) < MIN_AGE_ESTIMATE:
        return None
    # 200 draws and a 2,000-person bootstrap subset keep a month of a busy spot to about a
    # second (the subset's spread is scaled to the whole; estimate_shares).
    return estimate_shares(posteriors, model.calibration, draws=200, bootstrap_cap=2000)


def summarize(
    tally: SiteTally,
    coverage: dict[str, list[tuple[datetime, datetime]]] | None,
    known_spots: set[str],
    min_rate_hours: float = MIN_RATE_HOURS,
    calibrations: Mapping[tuple[str, str], ModelCalibration] | None = None,
) -> list[SpotSummary]:
    """One summary per spot (spots with no people included), best-ranked first.

    Spots with at least ``min_rate_hours`` of coverage are ranked first, by people per covered
    hour, so a spot whose camera was down half the day is not ranked below a busier-looking one
    for that reason alone; the other spots follow, ranked by people (their footage is too short
    for a rate to mean anything, or the store has no status information at all).
    """
    names = set(tally.spots) | known_spots | set(coverage or {})
    summaries = [
        summarize_spot(
            n,
            tally.spots.get(n) or tally.spot(n),
            None if coverage is None else coverage.get(n, []),
            min_rate_hours,
            {role: c for (spot, role), c in (calibrations or {}).items() if spot == n},
        )
        for n in names
    ]

    def key(s: SpotSummary) -> tuple[int, float, int, str]:
        rate = s.people_per_hour
        return (0 if rate is not None else 1, -(rate or 0.0), -s.people, s.spot)

    ordered = sorted(summaries, key=key)
    return [replace(s, rank=i + 1) for i, s in enumerate(ordered)]


AGE_GROUP_LABELS: tuple[str, ...] = tuple(g.value for g in AGE_GROUPS)
"""The 8 age groups as the workbook's headers show them."""

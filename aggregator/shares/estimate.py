"""How many of a spot's people are women, or in each age group: quantification, not counting.

Counting each person's most likely label ("classify and count") is biased towards the classifier's
own training mix: with 75 % women walking past, a classifier that is right 90 % of the time on
either gender reports 0.75 * 0.9 + 0.25 * 0.1 = 70 %. Averaging the calibrated probabilities
instead ("probabilistic classify and count") has the same pull, because each probability is
calibrated for the prior of the calibration set, not for this spot.

The estimator used here is the EM prior adjustment of Saerens, Latinne and Decaestecker (2002):
given posteriors calibrated for a known prior ``pi_0``, the spot's own prior ``pi`` is the fixed
point of

    p_i(y) ∝ p0_i(y) * pi(y) / pi_0(y),      pi(y) = mean_i p_i(y)

which is the maximum-likelihood prior of the spot under the classifier's own model of the faces.
It corrects the pull as far as the posteriors are calibrated, and its interval must therefore
carry two uncertainties (:func:`estimate_shares`): sampling (which people happened to pass:
bootstrap over people) and the classifier's (how well the calibration is known: each bootstrap
draw also takes one of the calibration's replicates, refitted on a resample of its labelled set).

Pure numpy; every function takes an ``(N, C)`` array of posteriors, one row per judged person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aggregator.shares.calibration import Calibration

F64 = npt.NDArray[np.float64]

_EPS = 1e-12


def _check(posteriors: npt.ArrayLike) -> F64:
    p = np.asarray(posteriors, np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"posteriors must be (N, C) with C >= 2, got shape {p.shape}")
    if len(p) and (np.any(p < -1e-9) or np.any(np.abs(p.sum(axis=1) - 1.0) > 1e-6)):
        raise ValueError("each row of posteriors must be a probability distribution")
    return np.clip(p, 0.0, 1.0)


def classify_and_count(posteriors: npt.ArrayLike) -> F64:
    """The share of people whose most likely class is each class (the naive estimate)."""
    p = _check(posteriors)
    if len(p) == 0:
        return np.full(p.shape[1], np.nan)
    counts = np.bincount(np.argmax(p, axis=1), minlength=p.shape[1]).astype(np.float64)
    return np.asarray(counts / counts.sum(), np.float64)


def probability_average(posteriors: npt.ArrayLike) -> F64:
    """The mean posterior ("probabilistic classify and count")."""
    p = _check(posteriors)
    return np.asarray(p.mean(axis=0), np.float64) if len(p) else np.full(p.shape[1], np.nan)


def em_prior(
    posteriors: npt.ArrayLike,
    calibration_prior: npt.ArrayLike,
    *,
    tolerance: float = 1e-6,
    max_iterations: int = 2000,
    start: F64 | None = None,
    pseudocount: float = 0.0,
) -> F64:
    """The spot's prior by EM prior adjustment (Saerens et al. 2002) of posteriors calibrated for
    ``calibration_prior``; ``start`` (e.g. the estimate on the whole sample, for a bootstrap
    draw) saves iterations, the fixed point is the same. ``pseudocount`` > 0 makes it the MAP
    estimate under a Dirichlet(1 + pseudocount) prior: with few people, or posteriors too broad to
    tell the classes apart, the maximum-likelihood prior runs into a corner (7 people of 30 years
    seen as 0 % 25-32), and one pseudo-person per class keeps it inside; on crowds of 250-500
    real faces it also lowered the age error (results/crowds.md)."""
    p0 = _check(posteriors)
    pi0 = np.asarray(calibration_prior, np.float64)
    if pi0.shape != (p0.shape[1],) or np.any(pi0 <= 0) or abs(pi0.sum() - 1.0) > 1e-6:
        raise ValueError(f"calibration_prior must be {p0.shape[1]} positive shares summing to 1")
    if len(p0) == 0:
        return np.full(p0.shape[1], np.nan)
    pi: F64 = np.asarray(p0.mean(axis=0) if start is None else start, np.float64)
    ratio_base = p0 / pi0
    for _ in range(max_iterations):
        adjusted = ratio_base * pi
        adjusted /= np.maximum(adjusted.sum(axis=1, keepdims=True), _EPS)
        new: F64 = np.asarray(
            (adjusted.sum(axis=0) + pseudocount) / (len(p0) + pseudocount * p0.shape[1]),
            np.float64,
        )
        if np.max(np.abs(new - pi)) < tolerance:
            return new
        pi = new
    return pi


@dataclass(frozen=True)
class ShareEstimate:
    """A spot's shares of each class, with a 95 % interval and the naive count beside them."""

    share: F64  # (C,) the estimate (EM prior adjustment)
    low: F64  # (C,) 2.5 % quantile over the bootstrap
    high: F64  # (C,) 97.5 % quantile
    naive: F64  # (C,) classify and count, for comparison
    people: int  # judged people the estimate rests on
    calibration: str  # which calibration the posteriors were corrected with

    @property
    def empty(self) -> bool:
        return self.people == 0


def estimate_shares(
    posteriors: npt.ArrayLike,
    calibration: Calibration,
    *,
    draws: int = 400,
    seed: int = 0,
    bootstrap_cap: int | None = None,
    pseudocount: float = 1.0,
) -> ShareEstimate:
    """EM prior adjustment with a bootstrap interval over people and over the calibration.

    Each draw resamples the people with replacement and takes one calibration replicate: the
    posteriors are re-tempered by the replicate's temperature ratio and adjusted from the
    replicate's prior (both refitted on a resample of the calibration's labelled set), so the
    interval widens by what is not known about the classifier, not only by who walked past.

    With more people than ``bootstrap_cap`` (a busy spot over a month), the draws run on a random
    subset of that size: each draw's deviation is split into its sampling part, scaled by
    sqrt(subset / people) as an M-estimator's spread shrinks, and its calibration part, which does
    not shrink with more people and is kept whole.
    """
    p = _check(posteriors)
    c = p.shape[1]
    if c != calibration.classes:
        raise ValueError(f"posteriors have {c} classes, the calibration {calibration.classes}")
    naive = classify_and_count(p)
    if len(p) == 0:
        nan = np.full(c, np.nan)
        return ShareEstimate(nan, nan, nan, naive, 0, calibration.name)
    if calibration.method == "acc":
        return _adjusted_count(p, calibration, draws, seed, naive)
    share = em_prior(calibration.adjust(p), calibration.prior, pseudocount=pseudocount)
    rng = np.random.default_rng(seed)
    replicates = calibration.replicates
    n = len(p)
    sub = p
    scale = 1.0
    if bootstrap_cap is not None and n > bootstrap_cap:
        sub = p[rng.choice(n, bootstrap_cap, replace=False)]
        scale = float(np.sqrt(bootstrap_cap / n))
    m = len(sub)
    centres = {id(rep): em_prior(rep.retemper(sub), rep.prior, start=share) for rep in replicates}
    sub_share = em_prior(
        calibration.adjust(sub), calibration.prior, start=share, pseudocount=pseudocount
    )
    deviations = np.empty((draws, c))
    for b in range(draws):
        rows = rng.integers(0, m, m)
        rep = replicates[b % len(replicates)]
        centre = centres[id(rep)]
        drawn = em_prior(rep.retemper(sub[rows]), rep.prior, start=centre, pseudocount=pseudocount)
        deviations[b] = (drawn - centre) * scale + (centre - sub_share)
    low, high = share + np.quantile(deviations, [0.025, 0.975], axis=0)
    low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
    # The point estimate lies inside its own interval even when the bootstrap is lopsided (a
    # share at the boundary, a handful of people).
    return ShareEstimate(
        share, np.minimum(low, share), np.maximum(high, share), naive, len(p), calibration.name
    )


def adjusted_count(counted: F64, confusion: F64) -> F64:
    """The true shares whose expected top-label counts are ``counted`` under ``confusion``
    (P(top | true)): least squares, then clipped to shares. Two classes: the classic
    (q - fpr) / (tpr - fpr)."""
    solved, *_ = np.linalg.lstsq(confusion.T, counted, rcond=None)
    solved = np.clip(solved, 0.0, None)
    total = solved.sum()
    return np.asarray(solved / total if total > 0 else counted, np.float64)


def _adjusted_count(
    p: F64, calibration: Calibration, draws: int, seed: int, naive: F64
) -> ShareEstimate:
    """The adjusted count with a bootstrap over people and over the calibration (each draw one
    replicate's confusion, measured on a resample of its set). The people's part draws the
    counted shares from their Jeffreys posterior, Dirichlet(counts + 1/2), rather than
    resampling the labels: 3 people all called women would resample to 100 % every time and
    give an interval of 100-100 %, where a count of 3 says far less."""
    assert calibration.confusion is not None  # checked when the calibration was made
    share = adjusted_count(naive, calibration.confusion)
    rng = np.random.default_rng(seed)
    c = p.shape[1]
    counts = np.bincount(p.argmax(axis=1), minlength=c)
    samples = np.empty((draws, c))
    for b in range(draws):
        rep = calibration.replicates[b % len(calibration.replicates)]
        counted = rng.dirichlet(counts + 0.5)
        confusion = rep.confusion if rep.confusion is not None else calibration.confusion
        samples[b] = adjusted_count(counted, confusion)
    low, high = np.quantile(samples, [0.025, 0.975], axis=0)
    return ShareEstimate(
        share, np.minimum(low, share), np.maximum(high, share), naive, len(p), calibration.name
    )

"""Accuracy, error and calibration of age/gender predictions (numpy only).

The age group of a prediction is the group of its expected age (the nearest-group mapping of
``footfall.contract.vocab``), and its confidence is the probability mass the model puts on the
ages of that group -- the number the edge reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from footfall.contract.vocab import AGE_GROUPS, age_group_for_years, age_group_index
from models.faces import AGE_BIN_YEARS
from models.runtime.gender_calibration import gender_log_odds, temper_gender

# Bin -> group index, for the group confidence.
BIN_GROUP: npt.NDArray[np.int64] = np.array(
    [age_group_index(age_group_for_years(float(y))) for y in AGE_BIN_YEARS], dtype=np.int64
)
# Age bands for the per-band table: the groups' ranges under the nearest-group mapping, with
# 10 years split off because the gender target applies from 10 years up.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-2", 0, 3),
    ("3-9", 3, 10),
    ("10-13", 10, 14),
    ("14-22", 14, 23),
    ("23-34", 23, 35),
    ("35-45", 35, 46),
    ("46-56", 46, 57),
    ("57-69", 57, 70),
    ("70+", 70, 200),
)
ECE_BINS = 10


def expected_ages(age_probs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return np.asarray(age_probs.astype(np.float64) @ AGE_BIN_YEARS.astype(np.float64))


def group_of_ages(ages: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    return np.array([age_group_index(age_group_for_years(float(a))) for a in ages], dtype=np.int64)


def group_mass(age_probs: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """(N, 81) bin probabilities -> (N, 8) group probabilities."""
    out = np.zeros((age_probs.shape[0], len(AGE_GROUPS)), dtype=np.float64)
    for g in range(len(AGE_GROUPS)):
        out[:, g] = age_probs[:, g == BIN_GROUP].sum(axis=1)
    return out


def temper(age_probs: npt.NDArray[Any], temperature: float) -> npt.NDArray[np.float64]:
    """``p ** (1 / T)``, renormalised: T > 1 spreads an over-confident distribution."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logp = np.log(np.clip(age_probs.astype(np.float64), 1e-12, None)) / temperature
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def group_confidence(
    age_probs: npt.NDArray[Any], temperature: float = 1.0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The reported group (from the untempered expected age, so accuracy does not change) and
    its confidence (the tempered mass on that group's ages)."""
    groups = group_of_ages(expected_ages(age_probs))
    mass = group_mass(temper(age_probs, temperature))
    return groups, mass[np.arange(len(groups)), groups]


def fit_group_temperature(
    age_probs: npt.NDArray[Any], ages: npt.NDArray[Any], grid: npt.NDArray[Any] | None = None
) -> tuple[float, float, float]:
    """The temperature that minimises the group ECE: (T, ECE at T = 1, ECE at T)."""
    grid = np.round(np.arange(0.5, 8.01, 0.05), 2) if grid is None else grid
    true = group_of_ages(ages)
    results = []
    for t in grid:
        groups, conf = group_confidence(age_probs, float(t))
        results.append((ece(conf, groups == true), float(t)))
    best_ece, best_t = min(results)
    groups, conf = group_confidence(age_probs, 1.0)
    return best_t, ece(conf, groups == true), best_ece


@dataclass(frozen=True)
class GenderFit:
    """A gender temperature fitted on held-out faces, with what it changes there."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float


def gender_nll(p_female: npt.NDArray[Any], female: npt.NDArray[Any]) -> float:
    """Mean negative log-likelihood of the true genders."""
    p_true = np.where(female.astype(bool), p_female, 1.0 - p_female)
    return float(-np.log(np.clip(p_true, 1e-12, 1.0)).mean())


def gender_ece(p_female: npt.NDArray[Any], female: npt.NDArray[Any]) -> float:
    """ECE of the confidence in the reported gender (the larger of the two probabilities)."""
    conf = np.maximum(p_female, 1.0 - p_female)
    return ece(conf, (p_female >= 0.5) == female.astype(bool))


def untempered_p_female(p_female: npt.NDArray[Any], temperature: float) -> npt.NDArray[np.float64]:
    """What the network said before the runtime's temperature: scaling the log-odds back by
    ``temperature`` undoes it exactly (up to the 1e-12 clip of saturated outputs)."""
    gender = np.stack([p_female, 1.0 - p_female], axis=1)
    return np.asarray(temper_gender(gender, 1.0 / temperature)[:, 0])


def fit_gender_temperature(
    p_female: npt.NDArray[Any], female: npt.NDArray[Any], grid: npt.NDArray[Any] | None = None
) -> GenderFit:
    """The temperature of the gender log-odds that minimises the negative log-likelihood of the
    true genders on uncalibrated ``p_female`` (NLL rather than ECE: it is smooth in T and does not
    depend on a choice of bins; the ECE is reported before and after as the check).

    The grid is 0.25-8 in steps of 0.01, the resolution the manifest keeps."""
    grid = np.round(np.arange(0.25, 8.001, 0.01), 2) if grid is None else grid
    female = female.astype(bool)
    z = gender_log_odds(np.stack([p_female, 1.0 - p_female], axis=1))
    sign = np.where(female, -1.0, 1.0)  # log-odds of the true gender
    # -log sigmoid(s z / T) = log(1 + exp(-s z / T)), for every T of the grid at once.
    nll = np.logaddexp(0.0, -(sign * z)[None, :] / grid[:, None]).mean(axis=1)
    best = float(grid[int(np.argmin(nll))])
    tempered = np.asarray(temper_gender(np.stack([p_female, 1 - p_female], axis=1), best)[:, 0])
    return GenderFit(
        temperature=best,
        ece_before=gender_ece(p_female, female),
        ece_after=gender_ece(tempered, female),
        nll_before=gender_nll(p_female, female),
        nll_after=gender_nll(tempered, female),
    )


def ece(confidence: npt.NDArray[Any], correct: npt.NDArray[Any], bins: int = ECE_BINS) -> float:
    """Expected calibration error: mean |accuracy - confidence| over equal-width bins, weighted."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


@dataclass(frozen=True)
class Scores:
    n: int
    gender_acc: float
    group_exact: float
    group_one_off: float
    mae: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "gender_acc": self.gender_acc,
            "group_exact": self.group_exact,
            "group_one_off": self.group_one_off,
            "mae": self.mae,
        }


def scores(
    p_female: npt.NDArray[Any],
    age_probs: npt.NDArray[Any],
    ages: npt.NDArray[Any],
    female: npt.NDArray[Any],
) -> Scores:
    n = len(ages)
    if n == 0:
        return Scores(0, float("nan"), float("nan"), float("nan"), float("nan"))
    pred_age = expected_ages(age_probs)
    pred_group, true_group = group_of_ages(pred_age), group_of_ages(ages)
    diff = np.abs(pred_group - true_group)
    return Scores(
        n=n,
        gender_acc=float(((p_female >= 0.5) == female.astype(bool)).mean()),
        group_exact=float((diff == 0).mean()),
        group_one_off=float((diff <= 1).mean()),
        mae=float(np.abs(pred_age - ages).mean()),
    )


def full_report(
    p_female: npt.NDArray[Any],
    age_probs: npt.NDArray[Any],
    ages: npt.NDArray[Any],
    female: npt.NDArray[Any],
    group_temperature: float = 1.0,
    gender_temperature: float = 1.0,
) -> dict[str, Any]:
    """Everything the model card shows: overall, per age band, per gender, confusion, ECE.

    ``group_temperature`` is the model's calibration of its group confidence (manifest); the
    ECE is reported with it and, when it is not 1, without it too. ``p_female`` is what the
    runtime hands out, already calibrated by ``gender_temperature`` (manifest); the gender ECE is
    reported as it is and, with the temperature undone, as the network answered."""
    female = female.astype(bool)
    overall = scores(p_female, age_probs, ages, female)
    per_band = {}
    for name, low, high in BANDS:
        sel = (ages >= low) & (ages < high)
        per_band[name] = scores(p_female[sel], age_probs[sel], ages[sel], female[sel]).as_dict()
    per_gender = {
        "female": scores(
            p_female[female], age_probs[female], ages[female], female[female]
        ).as_dict(),
        "male": scores(
            p_female[~female], age_probs[~female], ages[~female], female[~female]
        ).as_dict(),
    }
    pred_age = expected_ages(age_probs)
    pred_group, true_group = group_of_ages(pred_age), group_of_ages(ages)
    confusion = np.zeros((len(AGE_GROUPS), len(AGE_GROUPS)), dtype=np.int64)
    np.add.at(confusion, (true_group, pred_group), 1)
    gender_conf = np.maximum(p_female, 1 - p_female)
    gender_ok = (p_female >= 0.5) == female
    _, group_conf = group_confidence(age_probs, group_temperature)
    _, raw_conf = group_confidence(age_probs, 1.0)
    raw_p_female = untempered_p_female(p_female, gender_temperature)
    raw_gender_conf = np.maximum(raw_p_female, 1 - raw_p_female)
    return {
        "overall": overall.as_dict(),
        "per_band": per_band,
        "per_gender": per_gender,
        "group_confusion": {
            "labels": [g.value for g in AGE_GROUPS],
            "rows_true_cols_predicted": confusion.tolist(),
        },
        "calibration": {
            "gender_ece": ece(gender_conf, gender_ok),
            "gender_mean_confidence": float(gender_conf.mean()),
            "gender_nll": gender_nll(p_female, female),
            "gender_temperature": gender_temperature,
            "gender_ece_untempered": ece(raw_gender_conf, gender_ok),
            "gender_mean_confidence_untempered": float(raw_gender_conf.mean()),
            "gender_nll_untempered": gender_nll(raw_p_female, female),
            "group_ece": ece(group_conf, pred_group == true_group),
            "group_mean_confidence": float(group_conf.mean()),
            "group_temperature": group_temperature,
            "group_ece_untempered": ece(raw_conf, pred_group == true_group),
            "bins": ECE_BINS,
        },
    }

"""Site calibration: the classifier's errors measured on one spot's own people.

A camera's angle, light and distance change how a classifier errs; its calibration on clean
validation faces does not know them. An operator labels a sample of the spot's crops (a CSV of
``crop_key,gender,age_group``, e.g. 100 people) and the spot's shares are then corrected with what
that sample shows:

- gender (adjusted count): the confusion P(label | true gender) measured on the sample itself;
- age (EM): the classifier's own calibration, re-sharpened by a scale fitted on the sample (its
  class mix shifted out first, so a spot with more old people does not pass for a sharpness
  error); 8 groups from ~100 people are too few for a confusion matrix of their own.

Each comes with bootstrap replicates of the sample, so the workbook's intervals carry how little
100 people tell about the classifier.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from aggregator.shares.calibration import Calibration, Replicate, fit_calibration, fit_scale
from aggregator.shares.posteriors import (
    age_judged,
    age_posteriors,
    gender_judged,
    gender_posteriors,
)
from aggregator.shares.registry import ModelCalibration
from footfall.contract import AGE_GROUPS, AgeGroup, Gender

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MIN_LABELLED = 10
_RANGE = (0.1, 10.0)  # as aggregator.shares.calibration allows
_GENDER_INDEX = {Gender.FEMALE.value: 0, Gender.MALE.value: 1}
_GROUP_INDEX = {g.value: i for i, g in enumerate(AGE_GROUPS)}


class LabelsError(ValueError):
    """The labels file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Label:
    gender: int | None  # 0 female, 1 male; None: not labelled
    group: int | None  # index in AGE_GROUPS; None: not labelled


def read_labels(path: Path) -> dict[str, Label]:
    """``crop_key -> Label`` from a CSV with the header ``crop_key,gender,age_group``; a blank or
    ``unknown`` cell means the operator could not tell."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"crop_key", "gender", "age_group"} - set(reader.fieldnames or [])
            if missing:
                raise LabelsError(
                    f"{path}: the header needs crop_key,gender,age_group (missing "
                    f"{', '.join(sorted(missing))})"
                )
            out: dict[str, Label] = {}
            for line, row in enumerate(reader, start=2):
                key = (row["crop_key"] or "").strip()
                if not key:
                    raise LabelsError(f"{path}, line {line}: empty crop_key")
                out[key] = Label(
                    _parse(row["gender"], _GENDER_INDEX, path, line, "gender"),
                    _parse(row["age_group"], _GROUP_INDEX, path, line, "age_group"),
                )
            return out
    except UnicodeDecodeError:
        raise LabelsError(f"{path}: not a UTF-8 CSV file") from None


def _parse(
    value: str | None, allowed: Mapping[str, int], path: Path, line: int, name: str
) -> int | None:
    text = (value or "").strip().lower()
    if text in ("", Gender.UNKNOWN.value, AgeGroup.UNKNOWN.value):
        return None
    if text not in allowed:
        raise LabelsError(
            f"{path}, line {line}: {name} {value!r} is not one of {', '.join(allowed)} (or blank)"
        )
    return allowed[text]


def fit_site_gender(
    name: str, model: ModelCalibration, posteriors: F64, labels: I64, replicates: int = 50
) -> Calibration:
    _enough(posteriors, "gender")
    return fit_calibration(
        name,
        posteriors,
        labels,
        calibrated_for=model.calibration.prior,
        method="acc",
        replicates=replicates,
    )


def fit_site_age(
    name: str, model: ModelCalibration, posteriors: F64, labels: I64, replicates: int = 50
) -> Calibration:
    """The model's correction followed by a site scale s: ``(p^a e^b)^s = p^(s a) e^(s b)``, so
    the result is again one vector scaling."""
    _enough(posteriors, "age")
    base = model.calibration
    adjusted = base.adjust(posteriors)
    rng = np.random.default_rng(0)

    def fit(rows: I64) -> Replicate:
        counts = np.bincount(labels[rows], minlength=len(base.prior)) + 0.5
        shift = (counts / counts.sum()) / base.prior
        # The composite stays inside the range a calibration may have (a sample of one group
        # alone would otherwise sharpen without bound).
        total = float(np.clip(fit_scale(adjusted[rows], labels[rows], shift) * base.scale, *_RANGE))
        s = total / base.scale
        bias = None if base.bias is None else s * base.bias
        return Replicate(total, base.prior, bias)

    reps = tuple(fit(rng.integers(0, len(labels), len(labels))) for _ in range(replicates))
    whole = fit(np.arange(len(labels)))
    return Calibration(name, base.prior, whole.scale, reps, whole.bias, None, "em")


def _enough(posteriors: F64, role: str) -> None:
    if len(posteriors) < MIN_LABELLED:
        raise ValueError(
            f"only {len(posteriors)} labelled people with a judged {role} matched the spot's "
            f"events; label at least {MIN_LABELLED} (100 is a good sample)"
        )


@dataclass(frozen=True)
class SiteFit:
    """What ``calibrate`` found and fitted for one role."""

    role: str
    model: str
    labelled: int
    calibration: Calibration


def fit_from_events(
    spot: str,
    frame: pd.DataFrame,
    labels: Mapping[str, Label],
    models: Mapping[str, ModelCalibration],
) -> list[SiteFit]:
    """Site calibrations of ``spot`` from its labelled events: ``frame`` holds the events whose
    crop was labelled (with ``crop_key``, the gender and age columns), ``models`` the classifier's
    own calibration per role (the events' model). Roles with too few labelled people are left
    out with an error naming them."""
    keys = frame["crop_key"].tolist()
    out = []
    for role in ("gender", "age"):
        model = models.get(role)
        if model is None:
            continue
        if role == "gender":
            mask, posteriors = gender_judged(frame), gender_posteriors(frame)
            truth = [labels[k].gender for k in keys]
        else:
            mask, posteriors = age_judged(frame), age_posteriors(frame)
            truth = [labels[k].group for k in keys]
        judged_truth = [t for t, m in zip(truth, mask, strict=True) if m]
        use = np.array([t is not None for t in judged_truth], dtype=bool)
        p = np.asarray(posteriors, np.float64)[use]
        y = np.array([t for t in judged_truth if t is not None], dtype=np.int64)
        name = f"{spot}: site calibration of {model.model} ({len(y)} labelled people)"
        fit = fit_site_gender if role == "gender" else fit_site_age
        out.append(SiteFit(role, model.model, len(y), fit(name, model, p, y)))
    return out

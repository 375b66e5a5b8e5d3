"""One person's gender and age from the K best observations of their passage."""

import numpy as np
import numpy.typing as npt

from footfall.contract import (
    AGE_GROUPS,
    AgeEstimate,
    AgeGroup,
    Gender,
    GenderEstimate,
    age_group_for_years,
)
from models.runtime.classifier import FaceEstimates

UNKNOWN_GENDER = GenderEstimate(label=Gender.UNKNOWN, confidence=None)
UNKNOWN_AGE = AgeEstimate(group=AgeGroup.UNKNOWN, years=None, group_probabilities=None)


def combine(
    estimates: FaceEstimates, weights: npt.ArrayLike, *, min_gender_confidence: float
) -> tuple[GenderEstimate, AgeEstimate]:
    """One person's gender and age from several observations: probabilities and years averaged
    with ``weights`` (the observations' quality). A gender whose averaged probability stays under
    ``min_gender_confidence`` is reported as unknown rather than guessed."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if len(estimates) == 0 or len(w) != len(estimates):
        raise ValueError(f"need one weight per estimate, got {len(w)} for {len(estimates)}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be >= 0 and not all zero")
    w = w / w.sum()
    p_gender = w @ estimates.gender
    p_gender = p_gender / p_gender.sum()
    best = int(np.argmax(p_gender))
    confidence = float(p_gender[best])
    if confidence < min_gender_confidence:
        gender = UNKNOWN_GENDER
    else:
        gender = GenderEstimate(
            label=Gender.MALE if best == 1 else Gender.FEMALE, confidence=min(confidence, 1.0)
        )
    groups = w @ estimates.groups
    groups = groups / groups.sum()
    years = float(np.clip(w @ estimates.years, 0.0, 120.0))
    age = AgeEstimate(
        group=age_group_for_years(years),
        years=round(years, 1),
        group_probabilities={g: float(p) for g, p in zip(AGE_GROUPS, groups, strict=True)},
    )
    return gender, age

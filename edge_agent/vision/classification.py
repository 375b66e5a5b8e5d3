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
    """One person's gender and age from several observations, each counting by its ``weight``
    (the pipeline passes the log-odds of each observation's expected accuracy).

    Gender: the weighted mean of the observations' log-odds male vs female, so a confident clear
    face outweighs a hesitant blurred one and a face at chance adds nothing. Age: group
    probabilities and years averaged with the same weights. The observations' probabilities
    arrive calibrated (the classifier applies the model's ``gender_temperature``): for one face
    the confidence reported is the calibrated probability of the label, and a weighted mean (not
    a sum) keeps several faces of one person on that scale, since their errors are not
    independent. A gender whose combined probability stays under
    ``min_gender_confidence`` is reported as unknown rather than guessed."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if len(estimates) == 0 or len(w) != len(estimates):
        raise ValueError(f"need one weight per estimate, got {len(w)} for {len(estimates)}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be >= 0 and not all zero")
    w = w / w.sum()
    p = np.clip(estimates.gender / estimates.gender.sum(axis=1, keepdims=True), 1e-6, 1 - 1e-6)
    log_odds = float(w @ (np.log(p[:, 1]) - np.log(p[:, 0])))
    p_male = 1.0 / (1.0 + np.exp(-log_odds))
    p_gender = np.array([1.0 - p_male, p_male])
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

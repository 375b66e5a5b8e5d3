"""The people's posteriors as the share estimate takes them, from the workbook's event frames.

Gender: ``[P(female), P(male)]`` of each judged person, from the label and the confidence the edge
gives it (the calibrated probability of the chosen label). Age: the 8 group probabilities the event
carries. People whose gender or age is unknown have no posterior and are left out; the workbook says
how many.
"""

import numpy as np
import numpy.typing as npt
import pandas as pd

from aggregator.event_columns import AGE_PROBABILITY_COLUMNS
from footfall.contract import Gender

F32 = npt.NDArray[np.float32]

GENDER_CLASSES: tuple[Gender, ...] = (Gender.FEMALE, Gender.MALE)


def gender_judged(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Which rows of ``frame`` have a gender posterior."""
    confidence = frame["gender_confidence"].to_numpy(dtype=np.float64)
    known = frame["gender"].isin([g.value for g in GENDER_CLASSES]).to_numpy()
    return np.asarray(known & ~np.isnan(confidence), np.bool_)


def age_judged(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Which rows of ``frame`` have age-group probabilities."""
    probs = frame[list(AGE_PROBABILITY_COLUMNS.values())].to_numpy(dtype=np.float64)
    return np.asarray(~np.isnan(probs).any(axis=1), np.bool_)


def gender_posteriors(frame: pd.DataFrame) -> F32:
    """(N, 2) rows of [P(female), P(male)] for the judged people of ``frame``."""
    gender = frame["gender"]
    confidence = frame["gender_confidence"].to_numpy(dtype=np.float64)
    judged = gender_judged(frame)
    female = (gender == Gender.FEMALE.value).to_numpy()[judged]
    p_female = np.where(female, confidence[judged], 1.0 - confidence[judged])
    return np.stack([p_female, 1.0 - p_female], axis=1).astype(np.float32)


def age_posteriors(frame: pd.DataFrame) -> F32:
    """(N, 8) group probabilities of the people of ``frame`` whose age was judged."""
    probs = frame[list(AGE_PROBABILITY_COLUMNS.values())].to_numpy(dtype=np.float64)
    rows = probs[age_judged(frame)]
    total = rows.sum(axis=1, keepdims=True)
    return np.asarray(rows / np.where(total > 0, total, 1.0), np.float32)

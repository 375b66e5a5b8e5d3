"""A spot's women share and age mix estimated from the people's calibrated probabilities,
corrected for the classifier's own pull (quantification), with intervals that carry the
classifier's uncertainty as well as sampling."""

from aggregator.shares.calibration import Calibration, Replicate, fit_calibration, retemper
from aggregator.shares.estimate import (
    ShareEstimate,
    classify_and_count,
    em_prior,
    estimate_shares,
    probability_average,
)

__all__ = [
    "Calibration",
    "Replicate",
    "ShareEstimate",
    "classify_and_count",
    "em_prior",
    "estimate_shares",
    "fit_calibration",
    "probability_average",
    "retemper",
]

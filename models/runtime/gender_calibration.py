"""Temperature scaling of a gender head's probabilities: the one calibration the runtime applies
to what a gender network answers.

A network's P(male) is turned into log-odds, divided by the model's ``gender_temperature`` (the
manifest's, fitted on held-out faces by ``footfall-agent models calibrate``) and turned back. One
scalar per model: the label with the larger probability never changes (accuracy is untouched),
only how sure the answer says it is. Pure numpy, so that the evaluation can undo it exactly to
report the uncalibrated numbers next to the calibrated ones.
"""

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# Softmax outputs saturate at exactly 0 or 1 in float32; clipping keeps their log-odds finite
# (about +-27.6) so that a temperature can still soften them.
_EPS = 1e-12


def gender_log_odds(gender: npt.ArrayLike) -> F64:
    """(N, 2) probabilities [female, male] -> (N,) log-odds male vs female."""
    p = np.asarray(gender, np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"gender probabilities must have shape (N, 2), got {p.shape}")
    p = np.clip(p / p.sum(axis=1, keepdims=True), _EPS, 1.0)
    return np.asarray(np.log(p[:, 1]) - np.log(p[:, 0]))


def from_log_odds(log_odds: npt.ArrayLike) -> F64:
    """(N,) log-odds male vs female -> (N, 2) probabilities [female, male]."""
    z = np.asarray(log_odds, np.float64)
    p_male = 0.5 * (1.0 + np.tanh(z / 2.0))  # the logistic, without overflow for large |z|
    return np.stack([1.0 - p_male, p_male], axis=1)


def temper_gender(gender: npt.ArrayLike, temperature: float) -> F64:
    """Probabilities [female, male] with their log-odds divided by ``temperature`` (> 1 softens
    an over-confident head, < 1 sharpens a timid one, 1 leaves them as they are)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"gender temperature must be a finite number > 0, got {temperature}")
    log_odds = gender_log_odds(gender)  # checks the shape
    if temperature == 1.0:
        # Exactly what the head said (no clipping): models without a fitted temperature.
        p = np.asarray(gender, np.float64)
        return np.asarray(p / p.sum(axis=1, keepdims=True))
    return from_log_odds(log_odds / temperature)

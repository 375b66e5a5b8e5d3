"""What the share estimate needs to know about the classifier: the prior its posteriors are
calibrated for, and how well that calibration is known.

A :class:`Calibration` is fitted on a labelled set - the model's validation faces (shipped with
the model card) or a sample of one spot's own crops labelled by an operator (a site calibration,
``footfall-aggregator calibrate``). It holds

- ``prior``: the class shares of that labelled set, which is what calibrated posteriors assume;
- ``scale`` and ``bias``: a correction of the posteriors (``p ∝ p ** scale * exp(bias)``,
  "vector scaling"): the sharpness, and a per-class shift where the classifier leans towards one
  class; 1 and 0 when the edge's own temperature already fits the labelled set;
- ``confusion``: P(predicted class | true class) on the labelled set, for the adjusted count;
- ``method``: which estimate uses it - ``em`` (EM prior adjustment of the corrected posteriors)
  or ``acc`` (adjusted classify-and-count: the top labels counted, then the confusion undone),
  chosen per role by measurement on crowds of labelled faces
  (``aggregator/shares/results/crowds.md``);
- ``replicates``: the same two fitted again on bootstrap resamples of the labelled set, which is
  how the classifier's uncertainty enters the interval of a share.

Fitting is maximum likelihood (a golden-section search for the scale alone, Newton's method for
scale and biases) and counting, so nothing beyond numpy is needed on the aggregator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_EPS = 1e-12
_SCALE_RANGE = (0.1, 10.0)


def retemper(posteriors: F64, scale: float, bias: F64 | None = None) -> F64:
    """``p ** scale * exp(bias)``, renormalised: scale < 1 softens over-confident posteriors, a
    bias moves probability towards the classes a classifier under-calls."""
    if scale == 1.0 and bias is None:
        return posteriors
    logp = scale * np.log(np.maximum(posteriors, _EPS))
    if bias is not None:
        logp = logp + bias
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return np.asarray(out / out.sum(axis=1, keepdims=True), np.float64)


@dataclass(frozen=True)
class Replicate:
    """One bootstrap refit of a calibration."""

    scale: float
    prior: F64
    bias: F64 | None = None
    confusion: F64 | None = None

    def retemper(self, posteriors: F64) -> F64:
        return retemper(posteriors, self.scale, self.bias)


@dataclass(frozen=True)
class Calibration:
    """See the module docstring. ``name`` says where it came from, for the workbook."""

    name: str
    prior: F64
    scale: float = 1.0
    replicates: tuple[Replicate, ...] = field(default=())
    bias: F64 | None = None
    confusion: F64 | None = None
    method: str = "em"

    def __post_init__(self) -> None:
        prior = np.asarray(self.prior, np.float64)
        if prior.ndim != 1 or len(prior) < 2 or np.any(prior <= 0) or abs(prior.sum() - 1) > 1e-6:
            raise ValueError(f"calibration {self.name!r}: prior must be >= 2 positive shares")
        if not _SCALE_RANGE[0] <= self.scale <= _SCALE_RANGE[1]:
            raise ValueError(f"calibration {self.name!r}: scale {self.scale} out of range")
        object.__setattr__(self, "prior", prior)
        if self.method not in ("em", "acc"):
            raise ValueError(f"calibration {self.name!r}: method must be em or acc")
        if self.method == "acc" and self.confusion is None:
            raise ValueError(f"calibration {self.name!r}: the adjusted count needs a confusion")
        if not self.replicates:
            object.__setattr__(
                self,
                "replicates",
                (Replicate(self.scale, prior, self.bias, self.confusion),),
            )

    def adjust(self, posteriors: F64) -> F64:
        return retemper(posteriors, self.scale, self.bias)

    @property
    def classes(self) -> int:
        return len(self.prior)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            **_parts(self.scale, self.prior, self.bias, self.confusion),
            "replicates": [_parts(r.scale, r.prior, r.bias, r.confusion) for r in self.replicates],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            replicates = tuple(
                Replicate(
                    float(r["scale"]),
                    _shares(r["prior"]),
                    _array(r, "bias"),
                    _array(r, "confusion"),
                )
                for r in data["replicates"]
            )
            return cls(
                str(data["name"]),
                _shares(data["prior"]),
                float(data["scale"]),
                replicates,
                _array(data, "bias"),
                _array(data, "confusion"),
                str(data.get("method", "em")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a calibration record: {exc}") from None


def _parts(scale: float, prior: F64, bias: F64 | None, confusion: F64 | None) -> dict[str, Any]:
    out: dict[str, Any] = {"scale": round(scale, 6), "prior": _rounded(prior)}
    if bias is not None:
        out["bias"] = _rounded(bias)
    if confusion is not None:
        out["confusion"] = [_rounded(row) for row in confusion]
    return out


def _rounded(values: F64) -> list[float]:
    return [round(float(v), 6) for v in values]


def _array(data: dict[str, Any], key: str) -> F64 | None:
    return None if data.get(key) is None else np.asarray(data[key], np.float64)


def _shares(values: Sequence[float] | F64) -> F64:
    v = np.asarray(values, np.float64)
    return np.asarray(v / v.sum(), np.float64)


def _nll(posteriors: F64, labels: I64, scale: float, shift: F64 | None) -> float:
    p = retemper(posteriors, scale)
    if shift is not None:
        p = p * shift
        p /= p.sum(axis=1, keepdims=True)
    return float(-np.log(np.maximum(p[np.arange(len(labels)), labels], _EPS)).mean())


def fit_scale(posteriors: F64, labels: I64, shift: F64 | None = None) -> float:
    """The sharpness correction that maximises the likelihood of ``labels``; ``shift`` (the
    labelled set's prior over the one the posteriors are calibrated for) is applied first, so a
    set whose mix differs from the calibration set's does not pass for a sharpness error."""
    lo, hi = math.log(_SCALE_RANGE[0]), math.log(_SCALE_RANGE[1])
    golden = (math.sqrt(5) - 1) / 2

    def nll(log_scale: float) -> float:
        return _nll(posteriors, labels, math.exp(log_scale), shift)

    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


def fit_vector_scaling(posteriors: F64, labels: I64, iterations: int = 100) -> tuple[float, F64]:
    """(scale, bias) maximising the likelihood of ``labels`` under ``p ** scale * exp(bias)``:
    Newton's method with step halving on a convex problem (a multinomial logistic regression
    on the log-probabilities with one shared weight); bias[0] = 0 fixes the free offset."""
    logp = np.log(np.maximum(posteriors, _EPS))
    n, c = logp.shape
    onehot = np.eye(c)[labels]
    # Features per (person, class): the log-probability, then one indicator per class but the first.
    feats = np.concatenate(
        [logp[:, :, None], np.broadcast_to(np.eye(c)[None, :, 1:], (n, c, c - 1))], 2
    )
    theta = np.zeros(c)
    theta[0] = 1.0

    def nll(t: F64) -> float:
        z = feats @ t
        z -= z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(n), labels] - np.log(np.exp(z).sum(axis=1))).mean())

    current = nll(theta)
    for _ in range(iterations):
        z = feats @ theta
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        grad = np.einsum("nc,ncp->p", q - onehot, feats) / n
        mean_f = np.einsum("nc,ncp->np", q, feats)
        hess = (np.einsum("nc,ncp,ncq->pq", q, feats, feats) - mean_f.T @ mean_f) / n
        step = np.linalg.solve(hess + 1e-6 * np.eye(c), grad)
        size = 1.0
        while size > 1e-4:
            trial = theta - size * step
            trial[0] = min(max(trial[0], _SCALE_RANGE[0]), _SCALE_RANGE[1])
            value = nll(trial)
            if value <= current:
                break
            size /= 2
        else:
            break
        done = current - value < 1e-10
        theta, current = trial, value
        if done:
            break
    return float(theta[0]), np.concatenate([[0.0], theta[1:]])


def confusion_of(posteriors: F64, labels: I64, pseudocount: float = 0.5) -> F64:
    """P(top class | true class), rows summing to 1 (a pseudocount keeps rare cells above 0)."""
    c = posteriors.shape[1]
    counts = np.full((c, c), pseudocount / c)
    np.add.at(counts, (labels, posteriors.argmax(axis=1)), 1.0)
    return np.asarray(counts / counts.sum(axis=1, keepdims=True), np.float64)


def fit_calibration(
    name: str,
    posteriors: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    calibrated_for: npt.ArrayLike | None = None,
    replicates: int = 50,
    seed: int = 0,
    prior_pseudocount: float = 0.5,
    method: str = "em",
    bias: bool = False,
) -> Calibration:
    """A calibration from posteriors (as the events carry them) and the true classes of the same
    people.

    ``calibrated_for`` None: the posteriors were calibrated on this very set (a model's
    validation faces), so its class shares are the prior, refitted on every resample.
    ``calibrated_for`` given: the prior the posteriors are calibrated for (the model's), and the
    set is a sample of one spot (a site calibration): only the sharpness is fitted, after
    shifting from that prior to the sample's, and the prior stays the model's.

    ``prior_pseudocount`` keeps a class absent from a small sample from getting a zero share.

    ``method`` ``acc`` also measures the confusion the adjusted count undoes; ``bias`` (with a
    model's own set) fits per-class biases beside the scale (vector scaling)."""
    p = np.asarray(posteriors, np.float64)
    y = np.asarray(labels, np.int64)
    if p.ndim != 2 or len(p) != len(y) or len(y) < 10:
        raise ValueError(f"need >= 10 labelled posteriors, got {len(y)}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be class indices 0..{p.shape[1] - 1}")
    base = None if calibrated_for is None else _shares(np.asarray(calibrated_for, np.float64))

    def prior_of(rows: I64) -> F64:
        counts = np.bincount(y[rows], minlength=p.shape[1]) + prior_pseudocount
        return np.asarray(counts / counts.sum(), np.float64)

    def fit(rows: I64) -> Replicate:
        sample_prior = prior_of(rows)
        if method == "acc":
            return Replicate(
                1.0, sample_prior if base is None else base, None, confusion_of(p[rows], y[rows])
            )
        if base is None:
            if bias:
                scale, shift = fit_vector_scaling(p[rows], y[rows])
                return Replicate(scale, sample_prior, shift)
            return Replicate(fit_scale(p[rows], y[rows]), sample_prior)
        return Replicate(fit_scale(p[rows], y[rows], sample_prior / base), base)

    rng = np.random.default_rng(seed)
    reps = tuple(fit(rng.integers(0, len(y), len(y))) for _ in range(replicates))
    whole = fit(np.arange(len(y)))
    return Calibration(name, whole.prior, whole.scale, reps, whole.bias, whole.confusion, method)

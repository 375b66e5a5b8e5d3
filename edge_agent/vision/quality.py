"""How useful one face observation is for estimating gender and age: a score in 0-1.

The score is a product of factors, each in 0-1, so one bad property (too small, turned away, cut
by the frame border, blurred) is enough to rule an observation out:

- size: face box height between ``min_face_px`` (0) and ``good_face_px`` (1);
- frontalness: from the 5 landmarks, how far the nose sits from the eyes' midline (yaw) and how
  far down between eyes and mouth (pitch), relative to a frontal face;
- border: faces touching the frame border are likely cut off;
- detector score;
- pixels, from the aligned chip: contrast (a face in the dark is mostly sensor noise) and
  sharpness (contrast-normalised Laplacian energy). These are computed last, and only for
  observations whose other factors could still make the K best, because they need pixels.

The ramps above veto: a three-quarter view gets 0 however large and sharp. What ranks, weighs
and judges observations in the pipeline is instead :func:`expected_accuracy`: the probability
that the classifier's gender is right for a face with these measurements, from a logistic
regression fitted on labelled, degraded faces run through the edge's own path
(``python -m edge_agent.evaluation.quality_fit``; coefficients in ``quality_fit.json``). A turned
face is then worth less, in proportion to how much less often it is classified right, but it
still counts.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

# Nose-depth ratio (eyes -> nose over eyes -> mouth) of a frontal face, from the alignment template.
_FRONTAL_PITCH_RATIO = 0.572
# Landmarks are unknown (SSD): frontalness cannot be judged, so it neither helps nor rules out.
_UNKNOWN_FRONTALNESS = 0.7


@dataclass(frozen=True)
class QualityParams:
    min_face_px: float = 16.0
    good_face_px: float = 72.0
    max_yaw: float = 0.45
    max_pitch_error: float = 0.3
    border_px_fraction: float = 0.05
    full_score: float = 0.85
    sharpness_ref: float = 0.08
    min_contrast: float = 8.0
    good_contrast: float = 24.0
    # A face under ``min_face_px`` is at chance. The fit saw almost no faces under 20 px (YuNet
    # missed most of the smallest variants), and under the gender head's own 32 px input the chip
    # is upsampled, holding no more detail than the face had: the log-odds fade from none at
    # ``min_face_px`` to full at ``fit_face_px``. Every other measurement beyond what the fit saw
    # fades by the fit's own support (:meth:`AccuracyModel.coverage`).
    fit_face_px: float = 32.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_face_px < self.good_face_px:
            raise ValueError(
                f"need 0 <= min_face_px < good_face_px, got {self.min_face_px} and "
                f"{self.good_face_px}"
            )
        for name in ("max_yaw", "max_pitch_error", "full_score", "sharpness_ref"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.min_contrast < self.good_contrast:
            raise ValueError(
                f"need 0 <= min_contrast < good_contrast, got {self.min_contrast} and "
                f"{self.good_contrast}"
            )
        if not self.min_face_px < self.fit_face_px:
            raise ValueError(
                f"need min_face_px < fit_face_px, got {self.min_face_px} and {self.fit_face_px}"
            )
        if self.border_px_fraction < 0:
            raise ValueError(f"border_px_fraction must be >= 0, got {self.border_px_fraction}")


_DEFAULT_PARAMS = QualityParams()


@dataclass(frozen=True)
class HeadPose:
    """From the 5 landmarks: ``yaw`` = the nose's offset from the eyes' midline over the eye
    distance (0 frontal, about 0.5 at a three-quarter view); ``pitch_error`` = how far the nose
    sits from a frontal face's depth between eyes and mouth (as a fraction of eyes-to-mouth)."""

    yaw: float
    pitch_error: float


@dataclass(frozen=True)
class GeometryQuality:
    """The factors that need no pixels; ``total`` is an upper bound of the final quality.
    The raw measurements they come from are kept for :func:`expected_accuracy`."""

    size: float
    frontal: float
    border: float
    score: float
    face_px: float = 0.0
    detector_score: float = 0.0
    # None: landmarks unknown (SSD); ``implausible``: mouth above the eyes or eyes on one point.
    pose: HeadPose | None = None
    implausible: bool = False

    @property
    def total(self) -> float:
        return self.size * self.frontal * self.border * self.score


def _ramp(value: float, low: float, high: float) -> float:
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


def head_pose(landmarks: F32) -> HeadPose | None:
    """Yaw and pitch error from the landmarks; None when they are unknown, infinite yaw when the
    layout is not a face's (mouth above the eyes, eyes on one point)."""
    if not np.isfinite(landmarks).all():
        return None
    right_eye, left_eye, nose, mouth_r, mouth_l = (
        landmarks[i].astype(np.float64) for i in range(5)
    )
    eye_vec = left_eye - right_eye
    eye_dist = math.hypot(eye_vec[0], eye_vec[1])
    if eye_dist < 1.0:
        return HeadPose(math.inf, math.inf)
    across = eye_vec / eye_dist
    down = np.array([-across[1], across[0]])
    eye_mid = (right_eye + left_eye) / 2
    mouth_mid = (mouth_r + mouth_l) / 2
    if float(np.dot(mouth_mid - eye_mid, down)) <= 0:
        return HeadPose(math.inf, math.inf)  # mouth above the eyes: upside down or false
    yaw = abs(float(np.dot(nose - eye_mid, across))) / eye_dist
    pitch = float(np.dot(nose - eye_mid, down)) / float(np.dot(mouth_mid - eye_mid, down))
    return HeadPose(yaw, abs(pitch - _FRONTAL_PITCH_RATIO))


def frontalness(landmarks: F32, params: QualityParams) -> float:
    """1 for a frontal face, falling to 0 as the head turns (yaw) or tilts (pitch)."""
    pose = head_pose(landmarks)
    if pose is None:
        return _UNKNOWN_FRONTALNESS
    if not math.isfinite(pose.yaw):
        return 0.0
    return (1.0 - _ramp(pose.yaw, 0.0, params.max_yaw)) * (
        1.0 - _ramp(pose.pitch_error, 0.0, params.max_pitch_error)
    )


def geometry_quality(
    box: F32, landmarks: F32, score: float, width: int, height: int, params: QualityParams
) -> GeometryQuality:
    """Quality factors of a face at ``box`` (x1, y1, x2, y2) in a ``width`` x ``height`` frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    face = y2 - y1
    size = _ramp(face, params.min_face_px, params.good_face_px)
    gap = min(x1, y1, width - x2, height - y2)
    margin = params.border_px_fraction * face
    border = 0.4 + 0.6 * _ramp(gap, 0.0, margin) if margin > 0 else 1.0
    pose = head_pose(landmarks)
    return GeometryQuality(
        size=size,
        frontal=frontalness(landmarks, params),
        border=border,
        score=min(1.0, max(0.0, score) / params.full_score),
        face_px=face,
        detector_score=score,
        pose=pose if pose is None or math.isfinite(pose.yaw) else None,
        implausible=pose is not None and not math.isfinite(pose.yaw),
    )


@dataclass(frozen=True)
class PixelQuality:
    contrast: float
    sharpness: float
    contrast_std: float = 0.0  # grey-level standard deviation of the chip

    @property
    def total(self) -> float:
        return self.contrast * self.sharpness


def pixel_quality(chip: U8, params: QualityParams) -> PixelQuality:
    """Contrast (grey-level standard deviation between ``min_contrast`` and ``good_contrast``)
    and sharpness (Laplacian energy over intensity variance, so a dim but sharp face scores like a
    bright one) of an aligned chip, each 0-1."""
    gray = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    gray_f = gray.astype(np.float32)
    variance = float(gray_f.var())
    contrast = _ramp(math.sqrt(variance), params.min_contrast, params.good_contrast)
    std = math.sqrt(variance)
    if variance < 1.0:
        return PixelQuality(contrast=contrast, sharpness=0.0, contrast_std=std)
    lap = cv2.Laplacian(gray_f, cv2.CV_32F, ksize=1)
    ratio = float(lap.var()) / variance
    return PixelQuality(
        contrast=contrast,
        sharpness=1.0 - math.exp(-ratio / params.sharpness_ref),
        contrast_std=std,
    )


# The features of the accuracy model, each bounded so that the fit's extrapolation stays sane:
# a face of 300 px is classified no better than one of 128 px. The unfavourable bound is also
# where :meth:`AccuracyModel.coverage` reaches chance: for yaw 1.0, the nose reaching an eye (a
# profile, where the landmarks themselves are guesses).
FEATURES = ("log2_face_px", "yaw", "pitch_error", "detector_score", "contrast", "sharpness")
_BOUNDS: dict[str, tuple[float, float]] = {
    "log2_face_px": (3.0, 7.0),
    "yaw": (0.0, 1.0),
    "pitch_error": (0.0, 1.0),
    "detector_score": (0.0, 1.0),
    "contrast": (0.0, 2.0),  # grey-level standard deviation / 32
    "sharpness": (0.0, 1.0),
}
# Floor of an expected accuracy: guessing a gender is right half the time.
CHANCE = 0.5


def features(geometry: GeometryQuality, pixel: PixelQuality | None) -> dict[str, float]:
    """The accuracy model's inputs, unbounded; pose and pixel entries are missing when unknown."""
    out = {
        "log2_face_px": math.log2(max(geometry.face_px, 1.0)),
        "detector_score": geometry.detector_score,
    }
    if geometry.pose is not None:
        out["yaw"] = geometry.pose.yaw
        out["pitch_error"] = geometry.pose.pitch_error
    if pixel is not None:
        out["contrast"] = pixel.contrast_std / 32.0
        out["sharpness"] = pixel.sharpness
    return out


@dataclass(frozen=True)
class AccuracyModel:
    """P(gender right) = sigmoid(intercept + sum of weight x bounded feature).

    ``unknown`` holds the value used for a feature that cannot be measured (the pose without
    landmarks: the mean over the fitting faces, so it neither helps nor rules out); pixel
    features not yet measured take their most favourable bound, which makes the result an upper
    bound (used to skip pixels for observations that could not make the K best)."""

    intercept: float
    weights: Mapping[str, float]
    unknown: Mapping[str, float] = field(default_factory=dict)
    # Per feature, the range (1st-99th percentile) of the faces the model was fitted on.
    support: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [f for f in FEATURES if f not in self.weights]
        extra = [f for f in self.weights if f not in FEATURES]
        if missing or extra:
            raise ValueError(f"accuracy model weights: missing {missing}, unknown {extra}")

    def logit(self, values: Mapping[str, float]) -> float:
        z = self.intercept
        for name, w in self.weights.items():
            low, high = _BOUNDS[name]
            if name in values:
                v = values[name]
            elif name in self.unknown:
                v = self.unknown[name]
            else:  # not measured yet: the bound that favours the face
                v = high if w > 0 else low
            z += w * min(high, max(low, v))
        return z

    def coverage(self, values: Mapping[str, float]) -> float:
        """How far the fit may be believed for ``values``, 0-1: 1 inside its support; past the
        support's unfavourable edge (below it for a feature that helps, above it for one that
        hurts), falling linearly to 0 at the feature's bound. A logistic fit extrapolates
        linearly, and beyond its data that is a guess: of the faces it was fitted on, the 143
        beyond the support of some feature were right 74.8 % of the time where the fit said 80.1 %
        (faded: 77.1 %; ``results/quality_fit.md``). Unmeasured features are not faded, which
        keeps a value without pixels an upper bound."""
        out = 1.0
        for name, (low, high) in self.support.items():
            if name not in values:
                continue
            v, (floor, ceiling) = values[name], _BOUNDS[name]
            if self.weights[name] > 0 and v < low:
                out *= _ramp(v, floor, low)
            elif self.weights[name] < 0 and v > high:
                out *= 1.0 - _ramp(v, high, ceiling)
        return out

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.logit(values)
        return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "weights": dict(self.weights),
            "unknown": dict(self.unknown),
            "support": {k: list(v) for k, v in self.support.items()},
            "bounds": {k: list(v) for k, v in _BOUNDS.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AccuracyModel":
        return cls(
            intercept=float(data["intercept"]),
            weights={str(k): float(v) for k, v in data["weights"].items()},
            unknown={str(k): float(v) for k, v in data.get("unknown", {}).items()},
            support={
                str(k): (float(v[0]), float(v[1])) for k, v in data.get("support", {}).items()
            },
        )


@cache
def default_accuracy_model() -> AccuracyModel:
    """The model fitted for the default classifier, shipped as ``quality_fit.json``."""
    text = resources.files("edge_agent.vision").joinpath("quality_fit.json").read_text()
    return AccuracyModel.from_json(json.loads(text)["model"])


def expected_accuracy(
    geometry: GeometryQuality,
    pixel: PixelQuality | None,
    model: AccuracyModel,
    params: QualityParams | None = None,
) -> float:
    """The probability that the gender classified from this observation is right, in
    ``CHANCE``-1. Without ``pixel`` it is an upper bound of the value with pixels.

    Outside the fitted data the log-odds above chance are scaled down, assumptions rather than
    fits: by ``border`` for a face at the frame border (0.4-1, as in the ramps: none of the
    fitting faces was cut), by the model's :meth:`~AccuracyModel.coverage` for measurements
    beyond the faces it was fitted on (a head turned further, a chip blurrier than any of them),
    by the size fade below ``fit_face_px``, and to nothing under ``min_face_px``."""
    params = params or _DEFAULT_PARAMS
    if geometry.implausible or geometry.face_px < params.min_face_px:
        return CHANCE
    values = features(geometry, pixel)
    p = model.probability(values)
    if p <= CHANCE:
        return CHANCE
    fade = _ramp(geometry.face_px, params.min_face_px, params.fit_face_px)
    fade *= model.coverage(values)
    log_odds = math.log(p / (1.0 - p)) * geometry.border * fade
    return 1.0 / (1.0 + math.exp(-log_odds))


def evidence_weight(expected: float) -> float:
    """How much an observation counts when several are combined: its expected accuracy's
    log-odds (0 at chance), the weight a vote that is right with that probability deserves."""
    p = min(max(expected, CHANCE), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))

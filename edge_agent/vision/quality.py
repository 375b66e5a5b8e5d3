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
"""

import math
from dataclasses import dataclass

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
        if self.border_px_fraction < 0:
            raise ValueError(f"border_px_fraction must be >= 0, got {self.border_px_fraction}")


@dataclass(frozen=True)
class GeometryQuality:
    """The factors that need no pixels; ``total`` is an upper bound of the final quality."""

    size: float
    frontal: float
    border: float
    score: float

    @property
    def total(self) -> float:
        return self.size * self.frontal * self.border * self.score


def _ramp(value: float, low: float, high: float) -> float:
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


def frontalness(landmarks: F32, params: QualityParams) -> float:
    """1 for a frontal face, falling to 0 as the head turns (yaw) or tilts (pitch)."""
    if not np.isfinite(landmarks).all():
        return _UNKNOWN_FRONTALNESS
    right_eye, left_eye, nose, mouth_r, mouth_l = (
        landmarks[i].astype(np.float64) for i in range(5)
    )
    eye_vec = left_eye - right_eye
    eye_dist = math.hypot(eye_vec[0], eye_vec[1])
    if eye_dist < 1.0:
        return 0.0
    across = eye_vec / eye_dist
    down = np.array([-across[1], across[0]])
    eye_mid = (right_eye + left_eye) / 2
    mouth_mid = (mouth_r + mouth_l) / 2
    if float(np.dot(mouth_mid - eye_mid, down)) <= 0:
        return 0.0  # mouth above the eyes: upside down or a false detection
    yaw = abs(float(np.dot(nose - eye_mid, across))) / eye_dist
    pitch = float(np.dot(nose - eye_mid, down)) / float(np.dot(mouth_mid - eye_mid, down))
    return (1.0 - _ramp(yaw, 0.0, params.max_yaw)) * (
        1.0 - _ramp(abs(pitch - _FRONTAL_PITCH_RATIO), 0.0, params.max_pitch_error)
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
    return GeometryQuality(
        size=size,
        frontal=frontalness(landmarks, params),
        border=border,
        score=min(1.0, max(0.0, score) / params.full_score),
    )


@dataclass(frozen=True)
class PixelQuality:
    contrast: float
    sharpness: float

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
    if variance < 1.0:
        return PixelQuality(contrast=contrast, sharpness=0.0)
    lap = cv2.Laplacian(gray_f, cv2.CV_32F, ksize=1)
    ratio = float(lap.var()) / variance
    return PixelQuality(contrast=contrast, sharpness=1.0 - math.exp(-ratio / params.sharpness_ref))

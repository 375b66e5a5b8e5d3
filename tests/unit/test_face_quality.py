"""Face quality: each factor moves the score the way it should."""

import cv2
import numpy as np
import pytest

from edge_agent.vision.quality import (
    QualityParams,
    frontalness,
    geometry_quality,
    pixel_quality,
)
from tests.unit.synthetic_faces import FACE_LANDMARKS, face_image

P = QualityParams()


def _face(x: float, y: float, size: float) -> tuple[np.ndarray, np.ndarray]:
    box = np.array([x, y, x + size, y + size], np.float32)
    return box, (FACE_LANDMARKS * size + box[:2]).astype(np.float32)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(10, 0.0), (16, 0.0), (44, 0.5), (72, 1.0), (300, 1.0)],
)
def test_size_factor(size: float, expected: float) -> None:
    box, lm = _face(200, 200, size)
    assert geometry_quality(box, lm, 0.9, 1280, 720, P).size == pytest.approx(expected)


def test_turned_face_scores_lower_than_frontal() -> None:
    _, lm = _face(0, 0, 100)
    turned = lm.copy()
    turned[2, 0] += 10  # nose a quarter eye-distance off the midline: head turned
    profile = lm.copy()
    profile[2, 0] = lm[1, 0] + 10  # nose beyond an eye
    assert frontalness(lm, P) == pytest.approx(1.0, abs=0.05)
    assert 0.0 < frontalness(turned, P) < 0.5
    assert frontalness(profile, P) == 0.0
    upside_down = lm.copy()
    upside_down[3:, 1] = lm[0, 1] - 20
    assert frontalness(upside_down, P) == 0.0
    assert frontalness(np.full((5, 2), np.nan, np.float32), P) == pytest.approx(0.7)


def test_face_touching_the_border_scores_lower() -> None:
    inside = geometry_quality(*_face(100, 100, 80), 0.9, 640, 480, P)
    touching = geometry_quality(*_face(0, 100, 80), 0.9, 640, 480, P)
    assert inside.border == 1.0
    assert touching.border == pytest.approx(0.4)
    assert touching.total < inside.total


def test_weak_detection_scores_lower() -> None:
    strong = geometry_quality(*_face(100, 100, 80), 0.95, 640, 480, P)
    weak = geometry_quality(*_face(100, 100, 80), 0.55, 640, 480, P)
    assert strong.score == 1.0 and weak.score < 0.7


def test_pixel_quality_flat_dark_blurred_and_sharp() -> None:
    sharp = face_image(64, 64, np.array([[0, 0, 64, 64]], np.float32))
    blurred = np.asarray(cv2.GaussianBlur(sharp, (0, 0), 3), np.uint8)
    dark = (sharp // 16).astype(np.uint8)
    flat = np.full((64, 64, 3), 128, np.uint8)
    q_sharp, q_blur = pixel_quality(sharp, P), pixel_quality(blurred, P)
    assert q_sharp.sharpness > 0.9 and q_sharp.contrast == 1.0
    assert q_blur.sharpness < 0.5 * q_sharp.sharpness
    assert pixel_quality(dark, P).contrast < 0.5
    assert pixel_quality(flat, P).total == 0.0


def test_params_fail_fast() -> None:
    with pytest.raises(ValueError, match="need 0 <= min_face_px < good_face_px, got 50 and 40"):
        QualityParams(min_face_px=50, good_face_px=40)

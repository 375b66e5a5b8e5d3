"""Face quality: each factor moves the score the way it should, and the fitted expected
accuracy behaves as the pipeline relies on."""

import cv2
import numpy as np
import pytest

from edge_agent.evaluation.quality_fit import fit_logistic
from edge_agent.vision.quality import (
    CHANCE,
    FEATURES,
    AccuracyModel,
    GeometryQuality,
    PixelQuality,
    QualityParams,
    default_accuracy_model,
    evidence_weight,
    expected_accuracy,
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


# Expected accuracy: the fitted model shipped with the package, and the pipeline's unknown rule.

MODEL = default_accuracy_model()


def _geometry(size: float, nose_shift: float = 0.0, score: float = 0.9) -> GeometryQuality:
    box, lm = _face(200, 200, size)
    eye_dist = float(lm[1, 0] - lm[0, 0])
    lm = lm.copy()
    lm[2, 0] += nose_shift * eye_dist  # the nose off the eyes' midline: the head turned
    return geometry_quality(box, lm, score, 1280, 720, P)


def test_expected_accuracy_rises_with_size() -> None:
    values = [expected_accuracy(_geometry(s), None, MODEL, P) for s in (12, 20, 40, 80)]
    assert values[0] == CHANCE  # under min_face_px: nothing the fit saw
    assert values[1] < values[2] <= values[3]


def test_three_quarter_view_is_weighted_not_vetoed() -> None:
    frontal = expected_accuracy(_geometry(100), None, MODEL, P)
    three_quarter = _geometry(100, nose_shift=0.5)
    assert three_quarter.pose is not None and three_quarter.pose.yaw == pytest.approx(0.5, abs=0.02)
    assert three_quarter.frontal == 0.0  # the old ramp vetoed it
    turned = expected_accuracy(three_quarter, None, MODEL, P)
    profile = expected_accuracy(_geometry(100, nose_shift=1.0), None, MODEL, P)
    assert frontal > turned > 0.75
    assert profile == CHANCE


def test_pixels_only_lower_the_bound() -> None:
    g = _geometry(60)
    sharp = face_image(64, 64, np.array([[0, 0, 64, 64]], np.float32))
    blurred = np.asarray(cv2.GaussianBlur(sharp, (0, 0), 3), np.uint8)
    bound = expected_accuracy(g, None, MODEL, P)
    with_sharp = expected_accuracy(g, pixel_quality(sharp, P), MODEL, P)
    with_blur = expected_accuracy(g, pixel_quality(blurred, P), MODEL, P)
    assert bound >= with_sharp > with_blur > CHANCE


def test_border_and_implausible_faces() -> None:
    inside = expected_accuracy(
        geometry_quality(*_face(100, 100, 80), 0.9, 640, 480, P), None, MODEL
    )
    touching = expected_accuracy(
        geometry_quality(*_face(0, 100, 80), 0.9, 640, 480, P), None, MODEL
    )
    assert CHANCE < touching < inside
    box, lm = _face(100, 100, 80)
    lm[3:, 1] = lm[0, 1] - 20  # mouth above the eyes
    assert expected_accuracy(geometry_quality(box, lm, 0.9, 640, 480, P), None, MODEL) == CHANCE


def test_unknown_landmarks_take_the_fitted_mean_pose() -> None:
    box, _ = _face(100, 100, 80)
    g = geometry_quality(box, np.full((5, 2), np.nan, np.float32), 0.9, 640, 480, P)
    assert g.pose is None and not g.implausible
    assert CHANCE < expected_accuracy(g, None, MODEL) < 1.0


def test_evidence_weight_is_log_odds_and_zero_at_chance() -> None:
    assert evidence_weight(CHANCE) == 0.0
    assert evidence_weight(0.4) == 0.0
    assert evidence_weight(0.9) == pytest.approx(np.log(9))


def test_accuracy_model_names_its_features() -> None:
    with pytest.raises(ValueError, match=r"missing \['sharpness'\]"):
        AccuracyModel(0.0, {f: 0.0 for f in FEATURES if f != "sharpness"})
    model = AccuracyModel.from_json(MODEL.to_json())
    assert model == MODEL


def test_fit_recovers_a_known_relation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    truth = np.array([1.5, -2.0])
    p = 1 / (1 + np.exp(-(0.5 + x @ truth)))
    y = rng.random(len(p)) < p
    intercept, w = fit_logistic(x, y, l2=0.0)
    assert intercept == pytest.approx(0.5, abs=0.06)
    np.testing.assert_allclose(w, truth, atol=0.08)
    with pytest.raises(ValueError, match="need as many outcomes as rows, got 3 for 4"):
        fit_logistic(x[:4], y[:3])


def test_beyond_the_fitted_faces_fades_towards_chance() -> None:
    """Inside the support the fit is taken as it is; a chip blurrier, or a head turned further,
    than the faces it was fitted on fades towards chance (reached at the feature's bound)."""
    low, _ = MODEL.support["sharpness"]
    _, high = MODEL.support["yaw"]
    inside = {"sharpness": low + 0.01, "yaw": high - 0.01, "contrast": 1.0}
    assert MODEL.coverage(inside) == 1.0
    assert MODEL.coverage({"sharpness": low / 2}) == pytest.approx(0.5)
    assert MODEL.coverage({"sharpness": 0.0}) == 0.0
    assert 0.0 < MODEL.coverage({"yaw": (high + 1.0) / 2}) < 1.0
    assert MODEL.coverage({}) == 1.0  # nothing measured yet: the bound stays an upper bound
    # Favourable side: sharper or more frontal than the support is not faded.
    assert MODEL.coverage({"sharpness": 1.0, "yaw": 0.0}) == 1.0
    g = _geometry(60)
    pixel = PixelQuality(contrast=1.0, sharpness=low / 2, contrast_std=32.0)
    faded = expected_accuracy(g, pixel, MODEL, P)
    unfaded = expected_accuracy(g, pixel, AccuracyModel(MODEL.intercept, MODEL.weights), P)
    assert CHANCE < faded < unfaded


def test_support_travels_with_the_model() -> None:
    model = AccuracyModel.from_json(MODEL.to_json())
    assert model.support == MODEL.support and set(model.support) == set(FEATURES)

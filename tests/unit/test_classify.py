"""Combining observations into one estimate, and the Cydral models' input and output mapping."""

import numpy as np
import pytest

from edge_agent.vision.classification import combine
from footfall.contract import AGE_GROUPS, AgeGroup, Gender
from models.runtime.classifier import (
    _BIN_TO_GROUP,
    AGE_BIN_YEARS,
    FaceEstimates,
    FakeClassifier,
    _cydral_blob,
)


def _estimates(p_male: list[float], years: list[float]) -> FaceEstimates:
    n = len(years)
    groups = np.full((n, 8), 1 / 8)
    return FaceEstimates(
        gender=np.array([[1 - p, p] for p in p_male]), years=np.array(years), groups=groups
    )


def test_combine_weights_observations_by_quality() -> None:
    est = _estimates([0.9, 0.2], [40.0, 20.0])
    gender, age = combine(est, [3.0, 1.0], min_gender_confidence=0.6)
    # log-odds male = 0.75 * ln(9) + 0.25 * ln(1/4) = 1.3014 -> p = 0.786;
    # years = 0.75 * 40 + 0.25 * 20 = 35
    assert gender.label is Gender.MALE
    assert gender.confidence == pytest.approx(1 / (1 + 9**-0.75 * 4**0.25))
    assert age.years == pytest.approx(35.0)
    assert age.group is AgeGroup.G38_43
    assert age.group_probabilities is not None
    assert sum(age.group_probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("p_male", "min_conf", "label"),
    [
        ([0.55], 0.6, Gender.UNKNOWN),  # a coin flip is not reported as a gender
        ([0.45], 0.6, Gender.UNKNOWN),
        ([0.3], 0.6, Gender.FEMALE),
        ([0.9, 0.1], 0.6, Gender.UNKNOWN),  # observations disagree
        ([0.55], 0.5, Gender.MALE),
    ],
)
def test_uncertain_gender_is_unknown(p_male: list[float], min_conf: float, label: Gender) -> None:
    gender, _ = combine(
        _estimates(p_male, [30.0] * len(p_male)),
        [1.0] * len(p_male),
        min_gender_confidence=min_conf,
    )
    assert gender.label is label
    assert (gender.confidence is None) == (label is Gender.UNKNOWN)


def test_gender_combines_log_odds_not_probabilities() -> None:
    # One sure face (0.99) and one hesitant against (0.4) with equal weight: the probability
    # mean would be 0.695, the log-odds mean is sqrt(99 * 2/3) / (1 + that) = 0.89.
    gender, _ = combine(_estimates([0.99, 0.4], [30, 30]), [1, 1], min_gender_confidence=0.5)
    assert gender.label is Gender.MALE
    odds = (99 * 0.4 / 0.6) ** 0.5
    assert gender.confidence == pytest.approx(odds / (1 + odds))
    # A face at chance (weight 0) changes nothing.
    alone, _ = combine(_estimates([0.8], [30]), [1], min_gender_confidence=0.5)
    with_chance, _ = combine(_estimates([0.8, 0.1], [30, 30]), [1, 0], min_gender_confidence=0.5)
    assert with_chance.confidence == pytest.approx(alone.confidence)


def test_combine_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="need one weight per estimate, got 1 for 2"):
        combine(_estimates([0.9, 0.9], [30, 30]), [1.0], min_gender_confidence=0.6)
    with pytest.raises(ValueError, match="weights must be >= 0 and not all zero"):
        combine(_estimates([0.9], [30]), [0.0], min_gender_confidence=0.6)


def test_age_bins_map_to_the_nearest_group() -> None:
    assert AGE_BIN_YEARS[0] == 0.25 and AGE_BIN_YEARS[-1] == 80 and len(AGE_BIN_YEARS) == 81
    assert (_BIN_TO_GROUP.sum(axis=1) == 1).all()

    def group_of(years: float) -> AgeGroup:
        return AGE_GROUPS[int(np.argmax(_BIN_TO_GROUP[list(AGE_BIN_YEARS).index(years)]))]

    assert group_of(2) is AgeGroup.G0_2
    assert group_of(3) is AgeGroup.G4_6
    assert group_of(13) is AgeGroup.G8_12
    assert group_of(14) is AgeGroup.G15_20
    assert group_of(34) is AgeGroup.G25_32
    assert group_of(57) is AgeGroup.G60_100


def test_cydral_blob_is_rgb_minus_mean_over_256_nchw() -> None:
    chips = np.zeros((2, 64, 64, 3), np.uint8)
    chips[..., 0], chips[..., 1], chips[..., 2] = 10, 20, 30  # BGR
    blob = _cydral_blob(chips, 32)
    assert blob.shape == (2, 3, 32, 32) and blob.dtype == np.float32
    np.testing.assert_allclose(
        blob[0, :, 0, 0], (np.array([30, 20, 10]) - [122.782, 117.001, 104.298]) / 256, rtol=1e-5
    )


def test_face_estimates_validate_shapes() -> None:
    with pytest.raises(ValueError, match=r"groups must have shape \(1, 8\), got \(1, 7\)"):
        FaceEstimates(gender=np.zeros((1, 2)), years=np.zeros(1), groups=np.zeros((1, 7)))


def test_fake_classifier_records_batches() -> None:
    fake = FakeClassifier(p_male=0.2, years=70)
    est = fake.classify(np.zeros((3, 64, 64, 3), np.uint8))
    assert fake.batches == [3] and len(est) == 3
    gender, age = combine(est, [1, 1, 1], min_gender_confidence=0.6)
    assert gender.label is Gender.FEMALE and age.group is AgeGroup.G60_100

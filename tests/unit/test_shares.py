"""Share estimation on crowds drawn from a known model of the classifier: the EM prior adjustment
recovers a skewed mix where classify-and-count is pulled towards the calibration set's, and its
interval covers the truth."""

import numpy as np
import pytest

from aggregator.shares import (
    Calibration,
    classify_and_count,
    em_prior,
    estimate_shares,
    fit_calibration,
    probability_average,
    retemper,
)

CAL_PRIOR = np.array([0.5, 0.5])


def crowd(
    n: int, women: float, rng: np.random.Generator, *, separation: float = 2.6
) -> tuple[np.ndarray, np.ndarray]:
    """People of a spot with ``women`` share and their posteriors P(female), P(male), calibrated
    for a 50/50 set: a score x ~ N(+-separation/2, 1) per person; the exact posterior of that
    model under the 50/50 prior is the logistic of separation * x."""
    is_woman = rng.random(n) < women
    x = np.where(is_woman, separation / 2, -separation / 2) + rng.normal(size=n)
    p_f = 1 / (1 + np.exp(-separation * x))
    return np.stack([p_f, 1 - p_f], axis=1), is_woman


@pytest.mark.parametrize("women", [0.25, 0.75])
@pytest.mark.parametrize("n", [150, 500])
def test_em_recovers_a_skewed_mix_that_counting_pulls_to_half(women: float, n: int) -> None:
    rng = np.random.default_rng(int(women * 100) + n)
    cal = Calibration("model", CAL_PRIOR)
    errors_em, errors_naive, covered = [], [], 0
    for _ in range(20):
        p, is_woman = crowd(n, women, rng)
        truth = is_woman.mean()
        est = estimate_shares(p, cal, draws=200, seed=1)
        errors_em.append(est.share[0] - truth)
        errors_naive.append(est.naive[0] - truth)
        covered += est.low[0] <= truth <= est.high[0]
    # Naive counting is pulled towards 50 %: biased by several points, in the known direction.
    assert np.sign(np.mean(errors_naive)) == (1 if women < 0.5 else -1)
    assert abs(np.mean(errors_naive)) > 0.04
    assert abs(np.mean(errors_em)) < 0.015
    assert covered >= 17  # a 95 % interval, 20 crowds


def test_probability_average_is_pulled_too_and_em_fixes_it() -> None:
    rng = np.random.default_rng(5)
    p, is_woman = crowd(20_000, 0.8, rng)
    assert abs(probability_average(p)[0] - 0.8) > 0.05
    assert em_prior(p, CAL_PRIOR)[0] == pytest.approx(is_woman.mean(), abs=0.01)
    assert classify_and_count(p).sum() == pytest.approx(1.0)


def test_an_unsure_classifier_gets_a_wider_interval() -> None:
    rng = np.random.default_rng(7)
    sharp, _ = crowd(300, 0.6, rng, separation=3.0)
    rng = np.random.default_rng(7)
    blurry, _ = crowd(300, 0.6, rng, separation=1.2)
    cal = Calibration("model", CAL_PRIOR)
    a = estimate_shares(sharp, cal, draws=300)
    b = estimate_shares(blurry, cal, draws=300)
    assert (b.high[0] - b.low[0]) > 1.3 * (a.high[0] - a.low[0])


def test_calibration_uncertainty_widens_the_interval() -> None:
    rng = np.random.default_rng(9)
    p, _ = crowd(2000, 0.7, rng)
    known = Calibration("exact", CAL_PRIOR)
    unsure = Calibration(
        "from 60 labelled faces",
        CAL_PRIOR,
        replicates=tuple(
            Calibration("r", np.array([q, 1 - q])).replicates[0] for q in (0.42, 0.5, 0.58)
        ),
    )
    a, b = estimate_shares(p, known, draws=300), estimate_shares(p, unsure, draws=300)
    assert (b.high[0] - b.low[0]) > 1.5 * (a.high[0] - a.low[0])


def test_a_site_calibration_corrects_an_over_confident_classifier() -> None:
    # The edge's posteriors are too sharp at this spot (as on small faces): a labelled sample of
    # 100 people finds the correction, and the spot's share comes out right.
    rng = np.random.default_rng(11)
    p, is_woman = crowd(600, 0.7, rng, separation=1.5)
    sharp = retemper(p, 2.5)
    sample = rng.choice(600, 100, replace=False)
    labels = np.where(is_woman[sample], 0, 1)
    site = fit_calibration("site", sharp[sample], labels, calibrated_for=CAL_PRIOR)
    assert site.scale == pytest.approx(1 / 2.5, rel=0.35)
    est = estimate_shares(sharp, site, draws=300)
    assert abs(est.share[0] - is_woman.mean()) < 0.05
    assert est.low[0] <= is_woman.mean() <= est.high[0]
    again = Calibration.from_dict(site.to_dict())
    assert again.scale == pytest.approx(site.scale, abs=1e-5)
    assert len(again.replicates) == 50


def test_no_people_no_share() -> None:
    est = estimate_shares(np.zeros((0, 2)), Calibration("m", CAL_PRIOR))
    assert est.empty and np.isnan(est.share).all()


@pytest.mark.parametrize(
    ("posteriors", "message"),
    [
        (np.array([0.5, 0.5]), "posteriors must be"),
        (np.array([[0.7, 0.7]]), "probability distribution"),
    ],
)
def test_bad_posteriors_are_refused(posteriors: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        em_prior(posteriors, CAL_PRIOR)


def _asymmetric_crowd(
    n: int, women: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A classifier that calls 20 % of women men but only 5 % of men women, with near-certain
    posteriors (as a saturated gender head gives): counting is biased, tempering cannot fix it."""
    is_woman = rng.random(n) < women
    says_woman = np.where(is_woman, rng.random(n) > 0.20, rng.random(n) < 0.05)
    p_f = np.where(says_woman, 0.99, 0.01)
    return np.stack([p_f, 1 - p_f], axis=1), is_woman


def test_the_adjusted_count_undoes_an_asymmetric_confusion() -> None:
    rng = np.random.default_rng(11)
    val_p, val_women = _asymmetric_crowd(3000, 0.5, rng)
    cal = fit_calibration("asym", val_p, np.where(val_women, 0, 1), method="acc", replicates=30)
    assert cal.confusion is not None
    assert cal.confusion[0, 1] == pytest.approx(0.20, abs=0.03)  # women called men
    assert cal.confusion[1, 0] == pytest.approx(0.05, abs=0.02)
    errors, naive, covered = [], [], 0
    for _ in range(20):
        p, is_woman = _asymmetric_crowd(500, 0.75, rng)
        est = estimate_shares(p, cal, draws=200)
        errors.append(abs(est.share[0] - is_woman.mean()))
        naive.append(abs(est.naive[0] - is_woman.mean()))
        covered += est.low[0] <= is_woman.mean() <= est.high[0]
    assert np.mean(naive) > 0.1  # 0.75 * 0.8 + 0.25 * 0.05 = 61 % counted
    assert np.mean(errors) < 0.035
    assert covered >= 17


def test_vector_scaling_recovers_a_known_lean() -> None:
    rng = np.random.default_rng(3)
    n, c = 4000, 3
    labels = rng.integers(0, c, n)
    x = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    # Unit noise and a shift of 2 on the true class: the calibrated posterior is softmax(2 x).
    # What the classifier reports: twice as sharp, and leaning towards class 0 by 1 nat.
    shown = 4.0 * x + np.array([1.0, 0.0, 0.0])
    p = np.exp(shown - shown.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    cal = fit_calibration("lean", p, labels, bias=True, replicates=5)
    assert cal.scale == pytest.approx(0.5, abs=0.05)
    assert cal.bias is not None
    # softmax(0.5 * shown + b) = softmax(2 x) needs b = -0.5 * lean (relative to class 0).
    assert cal.bias[1] - cal.bias[0] == pytest.approx(0.5, abs=0.15)
    assert cal.bias[2] - cal.bias[0] == pytest.approx(0.5, abs=0.15)


def test_calibration_records_round_trip_with_their_method() -> None:
    rng = np.random.default_rng(4)
    p, women = _asymmetric_crowd(200, 0.5, rng)
    for cal in (
        fit_calibration("a", p, np.where(women, 0, 1), method="acc", replicates=3),
        fit_calibration("b", p, np.where(women, 0, 1), bias=True, replicates=3),
    ):
        again = Calibration.from_dict(cal.to_dict())
        assert again.method == cal.method and again.name == cal.name
        assert np.allclose(again.prior, cal.prior, atol=1e-6)
        for mine, theirs in ((again.confusion, cal.confusion), (again.bias, cal.bias)):
            assert (mine is None) == (theirs is None)
            if mine is not None and theirs is not None:
                assert np.allclose(mine, theirs, atol=1e-6)
    with pytest.raises(ValueError, match="needs a confusion"):
        Calibration("c", np.array([0.5, 0.5]), method="acc")


def test_a_pseudo_person_per_class_keeps_em_out_of_a_corner() -> None:
    # Ten people with broad posteriors: the maximum-likelihood mix puts all of them in 2 of 8
    # classes; one pseudo-person per class keeps every class possible.
    broad = np.full((10, 8), 0.1)
    broad[:7, 4] = 0.3
    broad[7:, 7] = 0.3
    broad /= broad.sum(axis=1, keepdims=True)
    prior = np.full(8, 1 / 8)
    assert em_prior(broad, prior).min() < 1e-3
    shrunk = em_prior(broad, prior, pseudocount=1.0)
    assert shrunk.min() > 0.02 and shrunk.argmax() == 4


def test_three_people_all_called_women_are_not_a_certain_100_percent() -> None:
    rng = np.random.default_rng(2)
    val_p, val_women = _asymmetric_crowd(2000, 0.5, rng)
    cal = fit_calibration("asym", val_p, np.where(val_women, 0, 1), method="acc", replicates=20)
    est = estimate_shares(np.array([[0.99, 0.01]] * 3), cal, draws=400)
    assert est.share[0] == pytest.approx(1.0)
    assert est.low[0] < 0.7  # a Wilson interval for 3 of 3 starts at 44 %

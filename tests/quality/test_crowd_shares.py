"""Shares on synthetic crowds of real labelled faces (UTKFace test, never used for fitting): the
estimate the workbook reports lands near the truth, its interval covers it, and it beats counting
each person's top label. The full table over 20 crowds per mix: aggregator/shares/results/crowds.md."""

from pathlib import Path

import numpy as np
import pytest

from aggregator.shares.crowds import SCENARIOS, run
from aggregator.shares.labelled import LabelledPosteriors, predict_split

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def test_faces(shared_dir: Path) -> LabelledPosteriors:
    # 1,200 of the 2,331 test faces: their landmarks take seconds, and every mix still has
    # enough faces of each class (a pool that runs out is drawn with replacement).
    return predict_split(
        shared_dir / "data" / "utkface",
        "test",
        "cydral",
        models_dir=shared_dir / "models",
        limit=1200,
    )


def test_skewed_crowds_get_their_shares_back(test_faces: LabelledPosteriors) -> None:
    results = run(test_faces, seeds=3, draws=200)
    assert len(results) == 3 * len(SCENARIOS)
    gender = [r for r in results if r.scenario.role == "gender"]
    age = [r for r in results if r.scenario.role == "age"]
    # Women's share: within 3 points for crowds of 500, within 6 for 120, always inside the
    # interval; on average much closer than the naive count (pulled towards 50 %).
    for r in gender:
        limit = 0.03 if r.scenario.people >= 500 else 0.06
        assert r.error()[0] <= limit, (r.scenario, r.estimate.share[0], r.truth[0])
        assert r.covered()[0], (r.scenario, r.estimate.low[0], r.estimate.high[0], r.truth[0])
    assert np.mean([r.error()[0] for r in gender]) < 0.6 * np.mean(
        [r.naive_error()[0] for r in gender]
    )
    # Age mix: each group's share within 3 points on average, closer than counting, and the
    # intervals cover most of the 8 groups' true shares.
    age_error = np.mean([r.error().mean() for r in age])
    assert age_error < 0.03
    assert age_error < 0.7 * np.mean([r.naive_error().mean() for r in age])
    assert np.mean([r.covered().mean() for r in age]) >= 0.8


def test_a_site_calibration_from_100_labelled_val_faces_keeps_the_shares(
    shared_dir: Path, test_faces: LabelledPosteriors
) -> None:
    """The operator's path with real faces: 100 labelled UTKFace val faces stand in for a spot's
    labelled crops; the site calibration fitted from them still gets skewed test crowds right."""
    from aggregator.shares.crowds import draw_crowd
    from aggregator.shares.estimate import estimate_shares
    from aggregator.shares.registry import calibration_for
    from aggregator.shares.site import fit_site_age, fit_site_gender

    val = predict_split(
        shared_dir / "data" / "utkface",
        "val",
        "cydral",
        models_dir=shared_dir / "models",
        limit=100,
    )
    gender_model = calibration_for("gender", "cydral-gender")
    age_model = calibration_for("age", "cydral-age")
    assert gender_model is not None and age_model is not None
    site_gender = fit_site_gender("site", gender_model, val.gender, val.gender_labels)
    site_age = fit_site_age("site", age_model, val.age, val.age_labels)
    assert site_gender.confusion is not None and len(site_gender.replicates) == 50
    for scenario in SCENARIOS:
        if scenario.people < 500:
            continue
        posteriors, truth = draw_crowd(test_faces, scenario, np.random.default_rng(5))
        calibration = site_gender if scenario.role == "gender" else site_age
        est = estimate_shares(posteriors, calibration, draws=200)
        if scenario.role == "gender":
            # 100 labelled people measure the confusion to a few points, and the interval says
            # so: wider than with the 2,334 val faces, and still covering the truth.
            assert abs(est.share[0] - truth[0]) <= 0.06, (scenario, est.share[0])
            assert est.low[0] <= truth[0] <= est.high[0], (est.low[0], est.high[0], truth[0])
        else:
            assert np.abs(est.share - truth).mean() < 0.035, (scenario, est.share)

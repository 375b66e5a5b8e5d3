"""The gender temperature: the manifest field, the runtime applying it where gender probabilities
are produced (so the edge's combine and the evaluation see the calibrated value), its fit, and the
evaluation undoing it for the card's "before" numbers."""

from pathlib import Path

import numpy as np
import pytest

from edge_agent.vision.classification import combine
from footfall.contract import Gender
from models.manifest import Manifest, ModelSpec, load_manifest
from models.runtime.classifier import OnnxFaceClassifier, OnnxHead, head_for
from models.runtime.gender_calibration import gender_log_odds, temper_gender
from models.runtime.head_kinds import Decode, Feed
from models.training.metrics import (
    fit_gender_temperature,
    full_report,
    gender_ece,
    untempered_p_female,
)
from tests.unit.onnx_nets import nhwc_net

# A chip whose pixels are the FaceRes means plus 2: the network's log-odds male are exactly 2.
_MEANS_BGR = np.array([103.939, 116.779, 123.68])
_LOGIT = 2.0


def _chips(n: int = 1) -> np.ndarray:
    # uint8 chips cannot hold the fractional means: pick pixels and compute the logit they give.
    return np.tile(np.round(_MEANS_BGR + _LOGIT).astype(np.uint8), (n, 8, 8, 1))


def _classifier(path: Path, temperature: float, *, flip: bool = False) -> OnnxFaceClassifier:
    feed = Feed.BGR_MEAN_NHWC
    return OnnxFaceClassifier(
        OnnxHead(
            path,
            8,
            "gender",
            feed=feed,
            decode=Decode.SIGMOID_MALE,
            gender_temperature=temperature,
        ),
        OnnxHead(path, 8, "age", feed=feed, decode=Decode.BINS_100),
        flip_average=flip,
        models=(),
    )


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


@pytest.mark.parametrize("flip", [False, True])
def test_runtime_hands_out_the_tempered_probability(tmp_path: Path, flip: bool) -> None:
    path = tmp_path / "logit.onnx"
    nhwc_net(path)
    logit = float((np.round(_MEANS_BGR + _LOGIT) - _MEANS_BGR).mean())
    raw = _classifier(path, 1.0, flip=flip).classify(_chips(2))
    assert raw.gender[0, 1] == pytest.approx(_sigmoid(logit), abs=1e-6)
    tempered = _classifier(path, 2.5, flip=flip)
    est = tempered.classify(_chips(2))
    np.testing.assert_allclose(est.gender[:, 1], _sigmoid(logit / 2.5), atol=1e-6)
    np.testing.assert_allclose(est.gender.sum(axis=1), 1.0)
    # probabilities() is what the evaluation reads: the same calibrated value.
    gender, _ = tempered.probabilities(_chips(1))
    assert gender[0, 1] == pytest.approx(_sigmoid(logit / 2.5), abs=1e-6)


def test_the_event_carries_the_calibrated_probability(tmp_path: Path) -> None:
    path = tmp_path / "logit.onnx"
    nhwc_net(path)
    logit = float((np.round(_MEANS_BGR + _LOGIT) - _MEANS_BGR).mean())
    est = _classifier(path, 2.5).classify(_chips(3))
    gender, _ = combine(est, [1.0, 2.0, 0.5], min_gender_confidence=0.5)
    assert gender.label is Gender.MALE
    assert gender.confidence == pytest.approx(_sigmoid(logit / 2.5), abs=1e-6)


def test_head_takes_the_temperature_from_the_manifest_entry(tmp_path: Path) -> None:
    entry = {
        "name": "x-gender",
        "version": "1",
        "role": "gender",
        "file": "x.onnx",
        "sha256": "0" * 64,
        "size": 1,
        "licence": "MIT",
        "commercial_use": True,
        "description": "x",
        "input_size": 32,
    }
    assert head_for(ModelSpec.model_validate(entry), tmp_path / "x.onnx").gender_temperature == 1.0
    spec = ModelSpec.model_validate({**entry, "gender_temperature": 1.7})
    assert head_for(spec, tmp_path / "x.onnx").gender_temperature == 1.7


def test_an_age_head_refuses_a_gender_temperature(tmp_path: Path) -> None:
    path = tmp_path / "logit.onnx"
    nhwc_net(path)
    feed = Feed.BGR_MEAN_NHWC
    with pytest.raises(ValueError, match="an age head takes no gender_temperature"):
        OnnxFaceClassifier(
            OnnxHead(path, 8, "gender", feed=feed, decode=Decode.SIGMOID_MALE),
            OnnxHead(path, 8, "age", feed=feed, decode=Decode.BINS_100, gender_temperature=2.0),
            models=(),
        )
    with pytest.raises(ValueError, match="gender_temperature must be a finite number > 0, got 0"):
        OnnxHead(path, 8, gender_temperature=0.0)


_ENTRY = """
[[models]]
name = "x-{role}"
version = "1"
role = "{role}"
file = "x.onnx"
sha256 = "{sha}"
size = 1
licence = "MIT"
commercial_use = true
description = "x"
input_size = 32
{extra}
"""


def _manifest(tmp_path: Path, role: str, extra: str) -> Path:
    path = tmp_path / "manifest.toml"
    path.write_text(_ENTRY.format(role=role, sha="0" * 64, extra=extra), encoding="utf-8")
    return path


def test_manifest_reads_gender_temperature_and_defaults_to_none(tmp_path: Path) -> None:
    spec = load_manifest(_manifest(tmp_path, "gender", "gender_temperature = 1.8")).get("x-gender")
    assert spec.gender_temperature == 1.8
    assert (
        load_manifest(_manifest(tmp_path, "gender", "")).get("x-gender").gender_temperature is None
    )


@pytest.mark.parametrize(
    ("role", "extra", "message"),
    [
        ("gender", "gender_temperature = 0", r"gender_temperature\n.*greater than 0"),
        ("gender", "gender_temperature = -1.5", r"gender_temperature\n.*greater than 0"),
        ("gender", "gender_temperature = nan", r"gender_temperature\n.*finite number"),
        ("gender", 'gender_temperature = "warm"', r"gender_temperature\n.*valid number"),
        ("age", "gender_temperature = 1.5", "x-age: gender_temperature is for gender models"),
    ],
)
def test_manifest_rejects_a_bad_gender_temperature(
    tmp_path: Path, role: str, extra: str, message: str
) -> None:
    path = _manifest(tmp_path, role, extra)
    with pytest.raises(
        ValueError, match=rf"manifest.toml: invalid model manifest: (?s:.*){message}"
    ):
        load_manifest(path)


def test_shipped_manifest_keeps_gender_temperatures_on_gender_models() -> None:
    manifest = load_manifest()
    Manifest.model_validate(manifest.model_dump())  # still valid as a whole
    for spec in manifest.models:
        if spec.gender_temperature is not None:
            assert spec.role.value == "gender"


def test_temper_gender_scales_the_log_odds_and_undoes_itself() -> None:
    p = np.array([[0.1, 0.9], [0.5, 0.5], [0.99, 0.01]])
    tempered = temper_gender(p, 2.0)
    np.testing.assert_allclose(gender_log_odds(tempered), gender_log_odds(p) / 2.0)
    np.testing.assert_allclose(temper_gender(tempered, 0.5), p)
    np.testing.assert_array_equal(temper_gender(p, 1.0), p)
    with pytest.raises(ValueError, match=r"must have shape \(N, 2\)"):
        temper_gender(np.ones((2, 3)), 2.0)


def _over_confident(t_true: float, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Genders drawn from calibrated log-odds z, reported as sigmoid(t_true * z)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, n)
    female = rng.random(n) < 1.0 / (1.0 + np.exp(z))  # P(male) = sigmoid(z)
    p_female = 1.0 / (1.0 + np.exp(t_true * z))
    return p_female, female


def test_fit_recovers_the_temperature_of_an_over_confident_head() -> None:
    p_female, female = _over_confident(2.5)
    fit = fit_gender_temperature(p_female, female)
    assert fit.temperature == pytest.approx(2.5, abs=0.1)
    assert fit.nll_after < fit.nll_before
    assert fit.ece_after < 0.02 < fit.ece_before


def test_report_shows_calibrated_and_untempered_gender_ece() -> None:
    p_raw, female = _over_confident(2.5, 4000)
    p_cal = temper_gender(np.stack([p_raw, 1 - p_raw], axis=1), 2.5)[:, 0]
    np.testing.assert_allclose(untempered_p_female(p_cal, 2.5), p_raw, atol=1e-9)
    ages = np.full(len(female), 30.0)
    bins = np.zeros((len(female), 81), np.float32)
    bins[:, 30] = 1.0
    c = full_report(p_cal, bins, ages, female, gender_temperature=2.5)["calibration"]
    assert c["gender_temperature"] == 2.5
    assert c["gender_ece"] == pytest.approx(gender_ece(p_cal, female))
    assert c["gender_ece_untempered"] == pytest.approx(gender_ece(p_raw, female))
    assert c["gender_ece"] < c["gender_ece_untempered"]
    assert c["gender_mean_confidence"] < c["gender_mean_confidence_untempered"]


def test_edge_and_evaluation_load_the_same_gender_temperature(models_dir: Path) -> None:
    from edge_agent.build import build_classifier
    from edge_agent.vision.settings import ClassifierSettings
    from models.assets import ModelResolver
    from models.training.evaluate import DEFAULT, load_model

    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    settings = ClassifierSettings()
    wanted = load_manifest().get(settings.gender_model).gender_temperature or 1.0
    classifier = build_classifier(settings, resolver)
    assert isinstance(classifier, OnnxFaceClassifier)
    assert classifier.gender.gender_temperature == wanted
    assert load_model(DEFAULT, resolver).gender_temperature == wanted
    assert load_model(DEFAULT, resolver, calibrated=False).gender_temperature == 1.0


def test_cydral_pair_reads_the_manifest_temperature(models_dir: Path) -> None:
    from models.runtime.classifier import cydral_classifier

    gender, age = models_dir / "gender-v1.onnx", models_dir / "age-v1.onnx"
    wanted = load_manifest().get("cydral-gender").gender_temperature or 1.0
    assert cydral_classifier(gender, age).gender.gender_temperature == wanted
    assert cydral_classifier(gender, age, gender_temperature=1.0).gender.gender_temperature == 1.0


def test_card_shows_gender_ece_before_and_after() -> None:
    from models.training.cards import card

    p_raw, female = _over_confident(2.5, 4000)
    p_cal = temper_gender(np.stack([p_raw, 1 - p_raw], axis=1), 2.5)[:, 0]
    ages = np.full(len(female), 30.0)
    bins = np.zeros((len(female), 81), np.float32)
    bins[:, 30] = 1.0
    rep = full_report(p_cal, bins, ages, female, gender_temperature=2.5)
    result = {
        "model": "toy",
        "description": "A toy.",
        "licence": "CC0-1.0",
        "commercial_use": True,
        "training_data": "none",
        "files": ["toy.onnx"],
        "split": "test",
        "faces": len(female),
        "yunet_detected": 1.0,
        "evaluated_at": "2026-01-01T00:00:00+00:00",
        "modes": {"flip": rep},
    }
    c = rep["calibration"]
    text = card(result, None, "toy.eval.json")
    assert "divided by T = 2.5 (`gender_temperature`" in text
    assert f"| flip | {c['gender_ece_untempered']:.3f} | {c['gender_ece']:.3f} |" in text
    # A model without a temperature gets no before/after table.
    plain = full_report(p_raw, bins, ages, female)
    assert "gender ECE before" not in card({**result, "modes": {"flip": plain}}, None, "x")

"""Heads that are not fed or read like the Cydral models (FaceRes, face-api), their manifest
entries, and which models ``models evaluate default`` loads."""

from pathlib import Path

import numpy as np
import pytest

from edge_agent.vision.settings import ClassifierSettings
from footfall.contract import ModelRole
from models.assets import ModelResolver
from models.manifest import Manifest, ModelSpec, load_manifest
from models.runtime.alignment import ALIGNMENT_TEMPLATE
from models.runtime.classifier import (
    AGE_BIN_YEARS,
    OnnxFaceClassifier,
    OnnxHead,
    blob,
    decode,
    head_for,
    realign,
    years_to_bins,
)
from models.runtime.head_kinds import Decode, Feed
from models.selection import DEFAULT_AGE_MODEL, DEFAULT_GENDER_MODEL, LicenceError, check_selection
from models.training.evaluate import DEFAULT, load_model
from tests.unit.onnx_nets import nhwc_net


@pytest.mark.parametrize(
    ("how", "raw", "expected"),
    [
        (Decode.SOFTMAX_FEMALE_MALE, [[0.2, 0.8]], [[0.2, 0.8]]),
        (Decode.SOFTMAX_MALE_FEMALE, [[0.2, 0.8]], [[0.8, 0.2]]),
        (Decode.SIGMOID_MALE, [[0.7], [0.0]], [[0.3, 0.7], [1.0, 0.0]]),
    ],
)
def test_gender_outputs_become_female_male(
    how: Decode, raw: list[list[float]], expected: list[list[float]]
) -> None:
    np.testing.assert_allclose(decode(np.array(raw), how), expected)


def test_hundred_age_bins_fold_into_the_81_bins() -> None:
    raw = np.zeros((3, 100))
    raw[0, 0] = 1.0  # 1 year
    raw[1, 29] = 1.0  # 30 years
    raw[2, 79:] = 1 / 21  # 80 to 100 years: all in the 80 bin
    bins = decode(raw, Decode.BINS_100)
    assert bins.shape == (3, 81)
    assert AGE_BIN_YEARS[np.argmax(bins[0])] == 1.0
    assert AGE_BIN_YEARS[np.argmax(bins[1])] == 30.0
    assert bins[2, 80] == pytest.approx(1.0)
    np.testing.assert_allclose(bins.sum(axis=1), 1.0)


def test_years_become_a_laplace_in_log_age() -> None:
    bins = years_to_bins([30.0, 3.0], 0.1)
    np.testing.assert_allclose(bins.sum(axis=1), 1.0)
    assert AGE_BIN_YEARS[np.argmax(bins[0])] == 30.0
    # Neighbours of the mode weigh exp(-|log(1 + a) - log(31)| / 0.1) relative to it.
    ratio = bins[0, 35] / bins[0, 30]
    assert ratio == pytest.approx(np.exp(-(np.log(36) - np.log(31)) / 0.1))
    # The same spread is narrower in years for a toddler than for an adult.
    mass_within_2 = [
        float(b[np.abs(AGE_BIN_YEARS - a) <= 2].sum()) for b, a in zip(bins, [30, 3], strict=True)
    ]
    assert mass_within_2[1] > mass_within_2[0]
    # Negative estimates count as newborns; a years output needs its spread.
    assert AGE_BIN_YEARS[np.argmax(years_to_bins([-4.0], 0.1)[0])] == 0.25
    with pytest.raises(ValueError, match="needs a spread"):
        decode(np.array([[30.0]]), Decode.YEARS)
    with pytest.raises(ValueError, match="spread must be > 0, got 0"):
        years_to_bins([30.0], 0)


def test_decode_checks_the_output_width() -> None:
    with pytest.raises(
        ValueError, match=r"bins-100 output must have shape \(1, 100\), got \(1, 81\)"
    ):
        decode(np.ones((1, 81)), Decode.BINS_100)


def test_blobs_of_faceres_and_faceapi() -> None:
    chips = np.zeros((1, 4, 4, 3), np.uint8)
    chips[..., 0], chips[..., 1], chips[..., 2] = 10, 20, 30  # B, G, R
    nhwc = blob(chips, 4, Feed.BGR_MEAN_NHWC)
    assert nhwc.shape == (1, 4, 4, 3) and nhwc.dtype == np.float32
    np.testing.assert_allclose(nhwc[0, 0, 0], [10 - 103.939, 20 - 116.779, 30 - 123.68], rtol=1e-6)
    nchw = blob(chips, 2, Feed.RGB_255_NCHW)
    assert nchw.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(nchw[0, :, 0, 0], [30, 20, 10])


def test_realign_on_the_edge_template_is_the_identity_and_a_shift_moves_pixels() -> None:
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(realign(chips, ALIGNMENT_TEMPLATE), chips)
    shifted = realign(chips, ALIGNMENT_TEMPLATE + np.float32(3 / 32))  # 3 px right and down
    np.testing.assert_array_equal(shifted[:, 3:, 3:], chips[:, :-3, :-3])


def test_head_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="an age in years needs age_spread"):
        OnnxHead(tmp_path / "a.onnx", 112, decode=Decode.YEARS)
    head = OnnxHead(tmp_path / "a.onnx", 112, decode=Decode.SIGMOID_MALE)
    assert head.decode_for(ModelRole.GENDER) is Decode.SIGMOID_MALE
    with pytest.raises(ValueError, match="sigmoid-male is not a age output"):
        head.decode_for(ModelRole.AGE)
    with pytest.raises(ValueError, match=r"template must have shape \(5, 2\)"):
        OnnxHead(tmp_path / "a.onnx", 112, template=np.zeros((4, 2), np.float32))


def test_classifier_runs_a_faceres_like_network(tmp_path: Path) -> None:
    path = tmp_path / "nhwc.onnx"
    nhwc_net(path)
    feed = Feed.BGR_MEAN_NHWC
    classifier = OnnxFaceClassifier(
        OnnxHead(path, 8, "gender", feed=feed, decode=Decode.SIGMOID_MALE),
        OnnxHead(path, 8, "age", feed=feed, decode=Decode.BINS_100),
        models=(),
    )
    chips = np.zeros((2, 8, 8, 3), np.uint8)
    chips[1] = (104, 117, 124)  # about the means: sigmoid(~0) = 0.5
    est = classifier.classify(chips)
    mean0 = -(103.939 + 116.779 + 123.68) / 3
    p_male = 1 / (1 + np.exp(-mean0))
    np.testing.assert_allclose(est.gender[0], [1 - p_male, p_male], atol=1e-6)
    assert est.gender[1, 1] == pytest.approx(
        1 / (1 + np.exp(-(0.061 + 0.221 + 0.32) / 3)), abs=1e-5
    )
    np.testing.assert_allclose(est.years, [30.0, 30.0], atol=1e-5)


def test_manifest_lists_the_new_models_as_non_commercial() -> None:
    manifest = load_manifest()
    for name in ("faceres-gender", "faceres-age", "faceapi-gender", "faceapi-age"):
        spec = manifest.get(name)
        assert spec.commercial_use is False
        assert spec.training_data and "IMDB-Wiki" in spec.training_data
        assert spec.template is not None and len(spec.template) == 5
        assert spec.source
    assert manifest.get("faceres-age").decode is Decode.BINS_100
    assert manifest.get("faceres-age").feed is Feed.BGR_MEAN_NHWC
    assert manifest.get("faceapi-age").decode is Decode.YEARS
    assert manifest.get("faceapi-age").age_spread is not None
    assert manifest.get("faceapi-gender").decode is Decode.SOFTMAX_MALE_FEMALE
    assert "inflated" in (manifest.get("faceapi-age").training_data or "")
    yunet_n = manifest.get("yunet-n")
    assert yunet_n.role is ModelRole.DETECTOR and yunet_n.commercial_use is True
    with pytest.raises(LicenceError, match="model 'faceres-gender' may not be used commercially"):
        check_selection("faceres-gender", "cydral-age", allow_noncommercial_models=False)
    check_selection("faceres-gender", "faceapi-age", allow_noncommercial_models=True)


def _spec(**extra: object) -> dict[str, object]:
    return {
        "name": "x-age",
        "version": "1",
        "role": "age",
        "file": "x.onnx",
        "sha256": "0" * 64,
        "size": 1,
        "licence": "MIT",
        "commercial_use": True,
        "description": "x",
        "input_size": 112,
        **extra,
    }


def test_manifest_rejects_inconsistent_heads() -> None:
    with pytest.raises(ValueError, match="x-age: an age in years needs age_spread"):
        Manifest.model_validate({"models": [_spec(decode="years")]})
    with pytest.raises(ValueError, match="x-age: decode sigmoid-male is not a age output"):
        Manifest.model_validate({"models": [_spec(decode="sigmoid-male")]})
    with pytest.raises(ValueError, match="template"):
        Manifest.model_validate({"models": [_spec(template=[[0.3, 0.3]] * 4)]})


def test_head_for_takes_everything_from_the_entry(tmp_path: Path) -> None:
    template = [[0.1, 0.2], [0.3, 0.2], [0.2, 0.3], [0.1, 0.4], [0.3, 0.4]]
    spec = ModelSpec.model_validate(
        _spec(feed="rgb-255-nchw", decode="years", age_spread=0.2, template=template, output="age")
    )
    head = head_for(spec, tmp_path / "x.onnx")
    assert (head.size, head.output, head.feed, head.decode, head.age_spread) == (
        112,
        "age",
        Feed.RGB_255_NCHW,
        Decode.YEARS,
        0.2,
    )
    assert head.template is not None
    np.testing.assert_allclose(head.template, template)
    with pytest.raises(ValueError, match="'x-age' does not state its input_size"):
        head_for(spec.model_copy(update={"input_size": None}), tmp_path / "x.onnx")


def test_evaluate_default_loads_the_edge_default(models_dir: Path) -> None:
    settings = ClassifierSettings()
    assert (settings.gender_model, settings.age_model) == (DEFAULT_GENDER_MODEL, DEFAULT_AGE_MODEL)
    loaded = load_model(DEFAULT, ModelResolver(models_dir=models_dir, allow_download=False))
    assert loaded.name == "default"
    assert loaded.heads == (settings.gender_model, settings.age_model)
    manifest = load_manifest()
    assert loaded.commercial_use is True
    assert loaded.group_temperature == (
        manifest.get(settings.age_model).confidence_temperature or 1.0
    )


@pytest.mark.parametrize(("name", "version"), [("yunet", "2023mar"), ("yunet-n", "640")])
def test_detector_setting_picks_the_yunet_weights(
    models_dir: Path, name: str, version: str
) -> None:
    from edge_agent.build import build_detector
    from edge_agent.vision.settings import DetectorSettings

    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    detector = build_detector(DetectorSettings(yunet_model=name), resolver)
    assert (detector.model.name, detector.model.version) == (name, version)
    with pytest.raises(ValueError, match="yunet_model"):
        DetectorSettings(yunet_model="yunet-x")


def test_edge_builds_faceres_and_faceapi_heads(models_dir: Path) -> None:
    from edge_agent.build import build_classifier

    settings = ClassifierSettings(
        gender_model="faceres-gender", age_model="faceapi-age", allow_noncommercial_models=True
    )
    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    classifier = build_classifier(settings, resolver)
    assert classifier.chip_size == 224
    assert [m.name for m in classifier.models] == ["faceres-gender", "faceapi-age"]
    chips = np.random.default_rng(0).integers(0, 255, (3, 224, 224, 3), dtype=np.uint8)
    est = classifier.classify(chips)
    assert len(est) == 3
    np.testing.assert_allclose(est.gender.sum(axis=1), 1.0)
    np.testing.assert_allclose(est.groups.sum(axis=1), 1.0)
    assert ((est.years >= 0.25) & (est.years <= 80)).all()

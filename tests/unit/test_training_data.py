"""Labels, splits, metrics, cards and the licence guard: the parts of training that need no torch."""

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.config import AgentConfig
from edge_agent.vision.settings import ClassifierSettings
from footfall.contract.vocab import AGE_GROUPS
from models.faces import AGE_BIN_YEARS, TEMPLATE, align
from models.manifest import load_manifest
from models.runtime.alignment import align_face
from models.selection import LicenceError, check_selection
from models.training import TrainingError
from models.training.cards import card, comparison, write_cards
from models.training.data import FaceFolder, Split, read_labels_csv, subsample
from models.training.metrics import BIN_GROUP, ece, full_report, group_mass, scores


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_utkface_file_names_give_age_and_gender(tmp_path: Path) -> None:
    _touch(
        tmp_path, "25_1_0_20170116174525125.jpg", "3_0_2_20161219140000000.jpg.chip.jpg", "x.jpg"
    )
    folder = FaceFolder.open(tmp_path)
    labels = {lab.file: lab for lab in folder.labels}
    assert set(labels) == {"25_1_0_20170116174525125.jpg", "3_0_2_20161219140000000.jpg.chip.jpg"}
    assert labels["25_1_0_20170116174525125.jpg"].female
    assert labels["25_1_0_20170116174525125.jpg"].gender_index == 0  # outputs are [female, male]
    assert not labels["3_0_2_20161219140000000.jpg.chip.jpg"].female
    assert labels["3_0_2_20161219140000000.jpg.chip.jpg"].group_index == 1  # 3 years -> 4-6


def test_hashed_splits_are_stable(tmp_path: Path) -> None:
    names = [f"{20 + i % 50}_{i % 2}_0_2017{i:010d}.jpg" for i in range(400)]
    _touch(tmp_path, *names)
    first = FaceFolder.open(tmp_path).labels
    again = FaceFolder.open(tmp_path).labels
    assert [lab.split for lab in first] == [lab.split for lab in again]
    counts = {s: sum(lab.split is s for lab in first) for s in Split}
    assert 0.7 < counts[Split.TRAIN] / 400 < 0.9


def test_operator_csv_accepts_words_and_numbers(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "file,age,gender,split\na.jpg,34,female,train\nb.jpg,7,0,test\nc.jpg,61,M,\n"
    )
    labels = read_labels_csv(csv_path)
    assert [(lab.file, lab.female, lab.split) for lab in labels[:2]] == [
        ("a.jpg", True, Split.TRAIN),
        ("b.jpg", False, Split.TEST),
    ]
    assert labels[2].split in set(Split)  # no split given: hashed from the name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,age\na.jpg,3\n", "missing column(s) gender"),
        ("file,age,gender\na.jpg,old,1\n", "labels.csv:2: age 'old' is not a number"),
        ("file,age,gender\na.jpg,30,x\n", "labels.csv:2: gender 'x' is not one of"),
        ("file,age,gender,split\na.jpg,30,1,dev\n", "labels.csv:2: split 'dev' is not"),
        ("file,age,gender\n", "no labelled faces"),
    ],
)
def test_operator_csv_errors_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labels_csv(path)


def test_subsample_is_reproducible() -> None:
    items = list(range(100))
    assert subsample(items, 10, 3) == subsample(items, 10, 3)
    assert subsample(items, 200, 3) == items


def test_training_and_evaluation_chips_are_the_edges_chips() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (220, 200, 3), dtype=np.uint8)
    points = (TEMPLATE * 150 + np.array([20.0, 35.0])).astype(np.float32)
    points[:, 1] += points[:, 0] * 0.1  # a slight roll
    for size in (32, 64, 256):
        assert np.array_equal(align(image, points, size), align_face(image, points, size))


def test_context_chip_margin_widens_the_view_around_the_same_face() -> None:
    points = (TEMPLATE * 180 + np.array([60.0, 40.0])).astype(np.float32)
    image = np.zeros((300, 300, 3), np.uint8)
    yy, xx = np.mgrid[0:300, 0:300]
    for x, y in points:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = 255
    margin, size = 0.25, 128
    chip = align(image, points, size, margin)
    # Each landmark's dot lands on the template shrunk into the central 1 / (1 + 2 * margin).
    for tx, ty in (TEMPLATE + margin) / (1 + 2 * margin) * size:
        near = chip[int(ty) - 4 : int(ty) + 5, int(tx) - 4 : int(tx) + 5, 0].astype(float)
        ys, xs = np.nonzero(near > 100)
        assert len(xs)
        assert abs(xs.mean() + int(tx) - 4 - tx) < 1.5 and abs(ys.mean() + int(ty) - 4 - ty) < 1.5


def _one_hot_age(ages: list[float]) -> npt.NDArray[np.float32]:
    probs = np.zeros((len(ages), len(AGE_BIN_YEARS)), dtype=np.float32)
    for i, a in enumerate(ages):
        probs[i, int(np.argmin(np.abs(AGE_BIN_YEARS - a)))] = 1
    return probs


def test_scores_on_a_hand_made_case() -> None:
    ages = np.array([1.0, 30.0, 50.0, 70.0])
    female = np.array([True, False, True, False])
    p_female = np.array([0.9, 0.2, 0.4, 0.1])  # third is wrong
    probs = _one_hot_age([1.0, 30.0, 40.0, 70.0])  # third: 40 -> 38-43, one group off
    s = scores(p_female, probs, ages, female)
    assert s.gender_acc == pytest.approx(0.75)
    assert s.group_exact == pytest.approx(0.75)
    assert s.group_one_off == pytest.approx(1.0)
    assert s.mae == pytest.approx(2.5)
    report = full_report(p_female, probs, ages, female)
    assert report["per_gender"]["female"]["gender_acc"] == pytest.approx(0.5)
    confusion = np.array(report["group_confusion"]["rows_true_cols_predicted"])
    assert confusion.sum() == 4 and confusion[6, 5] == 1


def test_group_mass_and_ece() -> None:
    assert len(set(BIN_GROUP.tolist())) == len(AGE_GROUPS)
    uniform = np.full((2, 81), 1 / 81, dtype=np.float32)
    assert np.allclose(group_mass(uniform).sum(axis=1), 1)
    # Confident and always right: calibrated. Confident and right half the time: ECE 0.4.
    assert ece(np.full(10, 0.999), np.ones(10, dtype=bool)) == pytest.approx(0.001)
    assert ece(np.full(10, 0.9), np.arange(10) % 2 == 0) == pytest.approx(0.4)


def test_cards_come_from_the_evaluation_json(tmp_path: Path) -> None:
    ages = np.array([1.0, 12.0, 30.0, 50.0, 75.0])
    female = np.array([True, False, True, False, True])
    rep = full_report(
        np.array([0.8, 0.3, 0.7, 0.2, 0.4]), _one_hot_age([1, 12, 30, 50, 75]), ages, female
    )
    result = {
        "model": "toy",
        "description": "A toy.",
        "licence": "CC0-1.0",
        "commercial_use": True,
        "training_data": "none",
        "files": ["toy.onnx"],
        "split": "test",
        "faces": 5,
        "yunet_detected": 1.0,
        "evaluated_at": "2026-01-01T00:00:00+00:00",
        "modes": {"single": rep},
    }
    (tmp_path / "toy.eval.json").write_text(json.dumps(result))
    (tmp_path / "toy.notes.md").write_text("## Known weaknesses\n\nToy.\n")
    written = write_cards(tmp_path)
    assert {p.name for p in written} == {"toy.md", "README.md"}
    text = (tmp_path / "toy.md").read_text()
    assert "| single | 80.0 % | 100.0 % |" in text
    assert "70+ (0.0 %)" in text  # the woman of 75 was called a man: a weak band, named
    assert "## Known weaknesses" in text
    assert card(result, None, "x") != text
    assert "[toy](toy.md) (single)" in comparison([result])


def test_default_classifier_is_commercial_safe() -> None:
    settings = ClassifierSettings()
    gender, age = check_selection(settings.gender_model, settings.age_model, False)
    assert gender.commercial_use and age.commercial_use


def test_noncommercial_model_needs_explicit_permission() -> None:
    manifest = load_manifest()
    noncommercial = [m for m in manifest.models if not m.commercial_use and m.role.value == "age"]
    assert noncommercial, "the manifest should list the UTKFace-trained models"
    name = noncommercial[0].name
    with pytest.raises(
        LicenceError, match=r"classifier.age_model: model .* may not be used commercially"
    ):
        check_selection("cydral-gender", name, allow_noncommercial_models=False)
    check_selection("cydral-gender", name, allow_noncommercial_models=True)
    with pytest.raises(LicenceError, match="is a gender model, not age"):
        check_selection("cydral-gender", "cydral-gender", True)


def test_agent_config_rejects_noncommercial_default_override() -> None:
    manifest = load_manifest()
    name = next(
        m.name for m in manifest.models if not m.commercial_use and m.role.value == "gender"
    )
    base = {"site": "s", "spot": "p", "agent": "a"}
    with pytest.raises(ValueError, match="allow_noncommercial_models"):
        AgentConfig.model_validate({**base, "classifier": {"gender_model": name}})
    ok = AgentConfig.model_validate(
        {**base, "classifier": {"gender_model": name, "allow_noncommercial_models": True}}
    )
    assert ok.classifier.gender_model == name


def test_cli_evaluate_names_an_unknown_model_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.cli import app

    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "nosuch", "--data", str(tmp_path), "--models-dir", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "error: no model named 'nosuch-gender' in the manifest" in result.output


def test_cli_evaluate_rejects_an_unknown_split(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.cli import app

    result = CliRunner().invoke(
        app, ["models", "evaluate", "cydral", "--data", str(tmp_path), "--split", "dev"]
    )
    assert result.exit_code == 1
    assert "error: --split must be train, val or test, not 'dev'" in result.output


def test_missing_torch_names_the_train_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from typer.testing import CliRunner

    from edge_agent.cli import app

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    for name in [
        m for m in sys.modules if m.startswith("models.training.") and m != "models.training.data"
    ]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match="install the 'train' extra"):
        import models.training.nets  # noqa: F401
    result = CliRunner().invoke(
        app, ["models", "export", str(tmp_path / "a.pt"), str(tmp_path / "a.onnx")]
    )
    assert result.exit_code == 1
    assert "error: PyTorch is not installed: install the 'train' extra" in result.output


def test_temperature_spreads_an_overconfident_age_distribution() -> None:
    from models.training.metrics import fit_group_temperature, group_confidence, temper

    rng = np.random.default_rng(0)
    true_ages = rng.uniform(20, 60, 400)
    # Confident guesses that are right about half the time: the group mass is over-confident.
    guesses = np.where(rng.random(400) < 0.5, true_ages, true_ages + rng.choice([-15, 15], 400))
    probs = np.exp(-0.5 * ((AGE_BIN_YEARS[None, :] - guesses[:, None]) / 1.5) ** 2)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    assert np.allclose(temper(probs, 1.0), probs, atol=1e-6)
    t, before, after = fit_group_temperature(probs, true_ages)
    assert t > 1 and after < before
    groups_1, conf_1 = group_confidence(probs, 1.0)
    groups_t, conf_t = group_confidence(probs, t)
    assert np.array_equal(groups_1, groups_t)  # the reported group does not move
    assert conf_t.mean() < conf_1.mean()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        temper(probs, 0)

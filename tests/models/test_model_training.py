"""Tiny training, ONNX export parity and the accuracy floor of the default model, on real data.

Budget: these run in CI on 2 cores; together they take about a minute (a few hundred faces, one
epoch, landmarks cached per session).
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.vision.settings import ClassifierSettings
from models.assets import ModelResolver
from models.training.data import FaceFolder, PreparedFaces, Split, prepare, subsample

pytestmark = [pytest.mark.data, pytest.mark.slow]

TINY_TRAIN, TINY_VAL = 320, 64


@pytest.fixture(scope="session")
def utkface(shared_dir: Path) -> FaceFolder:
    return FaceFolder.open(shared_dir / "data" / "utkface")


@pytest.fixture(scope="session")
def tiny(
    utkface: FaceFolder, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> PreparedFaces:
    labels = subsample(utkface.split(Split.TRAIN), TINY_TRAIN, 0) + subsample(
        utkface.split(Split.VAL), TINY_VAL, 0
    )
    cache = tmp_path_factory.mktemp("faces-cache")
    return prepare(utkface, labels, models_dir / "face_detection_yunet_2023mar.onnx", cache)


@pytest.fixture(scope="session")
def tiny_run(
    tiny: PreparedFaces, torch_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    from models.training.nets import Arch
    from models.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(arch=Arch.COMPACT, epochs=1, batch_size=64, seed=0, threads=2)
    return train(tiny, out, cfg, progress=False)


def test_tiny_training_writes_checkpoints_and_learns_something(tiny_run: Any) -> None:
    assert tiny_run.best_checkpoint.is_file()
    assert (tiny_run.out_dir / "last.pt").is_file()
    assert (tiny_run.out_dir / "history.json").is_file()
    record = tiny_run.history[0]
    assert np.isfinite(record.train_loss)
    # One epoch of 320 faces: no skill to speak of yet, but a sane range.
    assert 0.0 <= record.val["gender_acc"] <= 1.0
    assert record.val["mae"] < 40


def test_training_is_deterministic_and_resumes(
    tiny: PreparedFaces, tiny_run: Any, tmp_path: Path
) -> None:
    import torch

    from models.training.nets import Arch
    from models.training.train import TrainConfig, train

    cfg = TrainConfig(arch=Arch.COMPACT, epochs=1, batch_size=64, seed=0, threads=2)
    again = train(tiny, tmp_path / "again", cfg, progress=False)
    a = torch.load(tiny_run.best_checkpoint, weights_only=False)["model"]
    b = torch.load(again.best_checkpoint, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Resuming a finished run trains no further epoch and keeps its history.
    resumed = train(tiny, tmp_path / "again", cfg, resume=True, progress=False)
    assert [h.epoch for h in resumed.history] == [1]


def test_resume_refuses_another_configuration(tiny: PreparedFaces, tiny_run: Any) -> None:
    from models.training import TrainingError
    from models.training.nets import Arch
    from models.training.train import TrainConfig, train

    other = TrainConfig(arch=Arch.COMPACT, epochs=2, batch_size=64, seed=0, threads=2)
    with pytest.raises(TrainingError, match="another configuration"):
        train(tiny, tiny_run.out_dir, other, resume=True, progress=False)


def test_export_matches_pytorch_in_cv2_dnn(
    tiny_run: Any, tiny: PreparedFaces, utkface: FaceFolder, tmp_path: Path
) -> None:
    from models.faces import DnnAgeGender, read_image
    from models.training.export import TOLERANCE, export_onnx
    from models.training.train import load_checkpoint, predict_torch

    report = export_onnx(tiny_run.best_checkpoint, tmp_path / "tiny.onnx")
    assert report.max_abs_diff <= TOLERANCE
    # On real aligned faces too: the edge's path (align -> cv2.dnn) against PyTorch on the
    # un-jittered training view of the same faces. The two resample differently (INTER_AREA vs
    # bilinear), so agreement is looser than the export check: same decisions, close ages.
    faces = tiny.where(Split.VAL).subset(range(32))
    net, arch, _ = load_checkpoint(tiny_run.best_checkpoint)
    p_t, age_t = predict_torch(net, faces, arch)
    model = DnnAgeGender(tmp_path / "tiny.onnx", report.chip, "tiny")
    preds = model.predict_batch(
        [read_image(utkface.images / lab.file) for lab in faces.labels], list(faces.points)
    )
    p_c = np.array([p.p_female for p in preds])
    assert np.abs(p_c - p_t).max() < 0.1
    assert np.abs(np.array([p.expected_age for p in preds]) - age_t @ np.r_[0.25, 1:81]).max() < 3


def test_cli_train_and_export(
    tiny: PreparedFaces, shared_dir: Path, models_dir: Path, torch_available: None, tmp_path: Path
) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app,
        [
            "models",
            "train",
            str(shared_dir / "data" / "utkface"),
            "--out",
            str(tmp_path),
            "--arch",
            "vgg",
        ],
    )
    assert bad.exit_code == 1
    assert "error: --arch must be compact or levi-hassner, not 'vgg'" in bad.output
    missing = runner.invoke(
        app, ["models", "export", str(tmp_path / "nope.pt"), str(tmp_path / "x.onnx")]
    )
    assert missing.exit_code == 1
    assert f"error: no checkpoint at {tmp_path / 'nope.pt'}" in missing.output


# A fixed 400-face slice of the test split; the full split is in models/cards/cydral.eval.json.
SLICE = 400


def test_default_model_accuracy_floor(
    utkface: FaceFolder, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from models.training.evaluate import DEFAULT, load_model, predict_faces
    from models.training.metrics import scores

    settings = ClassifierSettings()
    labels = subsample(utkface.split(Split.TEST), SLICE, 0)
    faces = prepare(
        utkface,
        labels,
        models_dir / "face_detection_yunet_2023mar.onnx",
        tmp_path_factory.mktemp("test-slice"),
    )
    # What `footfall-agent models evaluate default` measures: the edge's default heads.
    loaded = load_model(DEFAULT, ModelResolver(models_dir=models_dir, allow_download=False))
    assert loaded.heads == (settings.gender_model, settings.age_model)
    p_female, age_probs = predict_faces(loaded.model, utkface.images, faces, settings.flip_average)
    s = scores(p_female, age_probs, faces.ages, faces.gender_index == 0)
    # Floors a few points under what this slice measured with Cydral + flip through the edge's
    # alignment and classifier (gender 0.920, group exact 0.603, 1-off 0.950, MAE 5.68 years; the
    # full split: 0.919 / 0.597 / 0.946 / 5.95). A regression in alignment or preprocessing
    # costs far more than the margin.
    assert s.gender_acc >= 0.89
    assert s.group_exact >= 0.55
    assert s.group_one_off >= 0.93
    assert s.mae <= 6.5

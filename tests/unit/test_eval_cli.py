"""``footfall-agent eval``: errors as one clear line, and ``scenario make`` end to end on the
fake face folder."""

from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.evaluation.scenario import GroundTruth
from tests.unit.evaluation_faces import fake_utkface

runner = CliRunner()


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    (folder / "models").mkdir(parents=True)
    fake_utkface(folder / "data")
    return folder


def test_make_writes_a_video_and_its_ground_truth(shared: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "tiny"\nwidth = 320\nheight = 240\nfps = 8.0\npeople = 3\n'
        "arrivals_per_minute = 60.0\nface_px = [30.0, 60.0]\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "eval",
            "scenario",
            "make",
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--shared",
            str(shared),
        ],
    )
    assert result.exit_code == 0, result.output
    truth = GroundTruth.load(out / "tiny.gt.json")
    assert len(truth.people) == 3 and truth.spec.faces_split == "test"
    cap = cv2.VideoCapture(str(out / "tiny.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == truth.frames
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    cap.release()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--scenario", "groups", "--spec", "x.toml"],
            "give exactly one of --spec FILE and --scenario NAME",
        ),
        (["--scenario", "nowhere"], "unknown scenarios ['nowhere']"),
        (
            ["--scenario", "groups", "--faces-split", "all"],
            "--faces-split must be train, val or test, got 'all'",
        ),
    ],
)
def test_scenario_arguments_are_checked(shared: Path, args: list[str], message: str) -> None:
    result = runner.invoke(
        app, ["eval", "scenario", "make", "--out", "o", "--shared", str(shared), *args]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_spec_errors_name_the_key(shared: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("people = -1\nwings = 2\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["eval", "scenario", "make", "--spec", str(spec), "--out", "o", "--shared", str(shared)],
    )
    assert result.exit_code == 2
    assert f"error: {spec}: people: Input should be greater than or equal to 0" in result.output
    assert f"error: {spec}: wings: Extra inputs are not permitted" in result.output


def test_shared_folder_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOOTFALL_SHARED_DIR", raising=False)
    result = runner.invoke(app, ["eval", "detectors"])
    assert result.exit_code == 2
    assert "give --shared or set FOOTFALL_SHARED_DIR" in result.output
    result = runner.invoke(app, ["eval", "detectors", "--shared", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path} has no models/ folder" in result.output

"""The counting line against the frame: a line or hysteresis that cannot fit the picture is an
error naming the setting and the frame size, at the first frame of a clip or a camera, and a
remote configuration that does not fit the running camera is rejected."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import edge_agent.process as process_module
import edge_agent.running as running_module
from edge_agent.cli import app as agent_app
from edge_agent.config import AgentConfig
from edge_agent.remote_config import REMOTE_CONFIG_FILE, RemoteConfigManager
from edge_agent.vision.counting import GeometryError, build_counter, check_geometry
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import CountingSettings
from footfall.contract import ConfigOutcome
from models.runtime.classifier import FakeClassifier
from tests.unit.test_damaged_clips import _clip

runner = CliRunner()
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _counting(**values: Any) -> CountingSettings:
    return CountingSettings.model_validate(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"units": "pixels", "line": [[5000, 0], [5000, 480]]},
            "counting.line: point (5000, 0) is outside the 640x480 frame (units = 'pixels': "
            "x 0-640, y 0-480)",
        ),
        (
            {"units": "pixels", "line": [[320, 0], [320, 481]], "hysteresis": 10},
            "counting.line: point (320, 481) is outside the 640x480 frame (units = 'pixels': "
            "x 0-640, y 0-480)",
        ),
        (
            {"units": "pixels", "line": [[320, 0], [320, 480]], "hysteresis": 241},
            "counting.hysteresis: 241 px is more than half the shorter side of the 640x480 "
            "frame, so no crossing could ever be counted",
        ),
    ],
    ids=["line-far-right", "just-below", "hysteresis"],
)
def test_geometry_outside_the_frame_is_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(GeometryError) as info:
        build_counter(_counting(**values), 640, 480)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "values",
    [
        {"units": "pixels", "line": [[0, 0], [640, 480]], "hysteresis": 240},  # corner to corner
        {"units": "fraction", "line": [[1.0, 0.0], [1.0, 1.0]]},  # fractions always fit
        {"mode": "edges", "units": "pixels", "line": [[5000, 0], [5000, 480]]},  # line unused
    ],
    ids=["pixels-on-the-edges", "fractions", "edges-mode"],
)
def test_geometry_inside_the_frame_is_fine(values: dict[str, Any]) -> None:
    check_geometry(_counting(**values), 640, 480)


def _pipeline(tmp_path: Path, **counting: Any) -> Pipeline:
    config = AgentConfig.model_validate(
        {
            "site": "s",
            "spot": "p",
            "agent": "a",
            "mode": "face",
            "data_dir": tmp_path,
            "counting": counting,
        }
    )
    return Pipeline.from_config(config, detector=FakeDetector([]), classifier=FakeClassifier())


def test_the_first_frame_checks_the_line(tmp_path: Path) -> None:
    pipe = _pipeline(tmp_path, units="pixels", line=[[5000, 0], [5000, 480]])
    with pytest.raises(GeometryError, match=r"outside the 640x480 frame"):
        pipe.step(np.zeros((480, 640, 3), np.uint8), START)


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_module, "build_detector", lambda *a: FakeDetector([]))
    monkeypatch.setattr(process_module, "build_classifier", lambda *a: FakeClassifier())


def test_process_names_the_setting_and_the_frame_and_exits_1(
    tmp_path: Path, fake_models: None
) -> None:
    clip = _clip(tmp_path / "c.avi")  # 64x48
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        'site = "s"\nspot = "p"\nagent = "a"\n[counting]\nunits = "pixels"\n'
        "line = [[5000, 0], [5000, 48]]\n",
        encoding="utf-8",
    )
    args = ["process", "--out", str(tmp_path / "out"), "--config", str(cfg), "--clip", str(clip)]
    args += ["--site", "s", "--spot", "p", "--start", "2026-05-01T09:00:00Z", "--no-progress"]
    result = runner.invoke(agent_app, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: clip {clip}: counting.line: point (5000, 0) is outside the 64x48 frame "
        "(units = 'pixels': x 0-64, y 0-48)"
    ]
    assert "Traceback" not in result.output


def test_run_turns_a_geometry_error_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def misfit(*_args: object, **_kwargs: object) -> None:
        raise GeometryError("counting.line: point (5000, 0) is outside the 640x480 frame")

    monkeypatch.setattr(running_module, "run_live", misfit)
    cfg = tmp_path / "agent.toml"
    cfg.write_text('site = "s"\nspot = "p"\nagent = "a"\n', encoding="utf-8")
    result = runner.invoke(agent_app, ["run", "--config", str(cfg)])
    assert (result.exit_code, result.output) == (
        1,
        "error: counting.line: point (5000, 0) is outside the 640x480 frame\n",
    )


def test_a_remote_line_that_does_not_fit_the_camera_is_rejected(tmp_path: Path) -> None:
    base = AgentConfig.model_validate(
        {"site": "s", "spot": "p", "agent": "a", "mode": "face", "data_dir": tmp_path}
    )
    pipe = Pipeline.from_config(base, detector=FakeDetector([]), classifier=FakeClassifier())
    manager = RemoteConfigManager(base)
    manager.checks.append(pipe.check_config)
    misfit = {
        "config_version": "far",
        "counting": {"units": "pixels", "line": [[5000, 0], [5000, 480]]},
    }
    fits = {
        "config_version": "near",
        "counting": {"units": "pixels", "line": [[600, 0], [600, 480]]},
    }
    # Before the first frame nothing is known to check against.
    assert manager.handle(json.dumps(fits).encode()).outcome is ConfigOutcome.APPLIED
    pipe.step(np.zeros((480, 640, 3), np.uint8), START)
    answer = manager.handle(json.dumps(misfit).encode())
    assert (answer.outcome, answer.config_version, answer.active_version) == (
        ConfigOutcome.REJECTED,
        "far",
        "near",
    )
    assert answer.reason == (
        "counting.line: point (5000, 0) is outside the 640x480 frame (units = 'pixels': x 0-640, "
        "y 0-480)"
    )
    assert json.loads((tmp_path / REMOTE_CONFIG_FILE).read_text())["config_version"] == "near"


def test_a_line_that_stopped_fitting_keeps_the_one_in_effect(tmp_path: Path) -> None:
    pipe = _pipeline(tmp_path)
    pipe.step(np.zeros((480, 640, 3), np.uint8), START)
    before = pipe.counting
    misfit = AgentConfig.model_validate(
        {
            "site": "s",
            "spot": "p",
            "agent": "a",
            "data_dir": tmp_path,
            "counting": {"units": "pixels", "line": [[5000, 0], [5000, 480]]},
        }
    )
    pipe.apply_config(misfit)  # e.g. the camera changed resolution after the check
    assert pipe.counting == before

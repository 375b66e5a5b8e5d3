"""A clip that stops decoding early is reported (frames read against the container's count)
with a non-zero exit from ``process`` and ``survey``, never as ok. The damaged clips are made
here: a synthetic MJPEG clip, cut short."""

import re
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import edge_agent.process as process_module
from aggregator.cli import app as aggregator_app
from edge_agent.cli import app as agent_app
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.sources import VideoFileSource, tolerated_shortfall
from models.runtime.classifier import FakeClassifier
from tests.unit.test_sources import START

runner = CliRunner()
FRAMES = 60  # at 10 fps: 6 s


def _clip(path: Path, keep: float = 1.0) -> Path:
    """A 64x48 MJPEG AVI of FRAMES noise frames whose file is cut to ``keep`` of its bytes (the
    AVI header still says FRAMES)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(FRAMES):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _read(path: Path) -> VideoFileSource:
    source = VideoFileSource(path, START)
    for _ in source.frames(threading.Event()):
        pass
    source.close()
    return source


def test_a_clip_cut_mid_stream_says_how_far_it_got(tmp_path: Path) -> None:
    source = _read(_clip(tmp_path / "cut.avi", keep=0.5))
    assert source.frame_count == FRAMES and source.frames_read < FRAMES - 3
    read = source.frames_read
    assert source.shortfall() == (
        f"{tmp_path / 'cut.avi'}: decoding stopped after {read} of 60 frames "
        f"({read / 10:.1f} of 6.0 s): the file is damaged or cut short"
    )


def test_a_whole_clip_and_a_small_container_mismatch_are_complete(tmp_path: Path) -> None:
    assert _read(_clip(tmp_path / "whole.avi")).shortfall() is None
    nearly = _read(_clip(tmp_path / "nearly.avi", keep=0.97))  # the last frame is lost
    assert FRAMES - 3 <= nearly.frames_read < FRAMES
    assert nearly.shortfall() is None


@pytest.mark.parametrize(
    ("expected", "tolerated"), [(10, 3), (179, 3), (300, 3), (301, 4), (1394, 14), (90_000, 900)]
)
def test_the_tolerated_shortfall_is_3_frames_or_1_percent(expected: int, tolerated: int) -> None:
    assert tolerated_shortfall(expected) == tolerated


def test_a_clip_stopped_by_the_caller_is_not_damaged(tmp_path: Path) -> None:
    source = VideoFileSource(_clip(tmp_path / "whole.avi"), START)
    stop = threading.Event()
    for frame in source.frames(stop):
        if frame.index == 10:
            stop.set()
    source.close()
    assert source.shortfall() is None


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real pipeline on fake detector and classifier: no model files needed.
    monkeypatch.setattr(process_module, "build_detector", lambda *a: FakeDetector([]))
    monkeypatch.setattr(process_module, "build_classifier", lambda *a: FakeClassifier())


def test_process_exits_1_on_a_damaged_clip_and_still_does_the_others(
    tmp_path: Path, fake_models: None
) -> None:
    cut, whole = _clip(tmp_path / "cut.avi", keep=0.5), _clip(tmp_path / "whole.avi")
    result = runner.invoke(
        agent_app,
        [
            "process",
            "--out",
            str(tmp_path / "out"),
            "--clip",
            str(cut),
            "--clip",
            str(whole),
            "--site",
            "s",
            "--spot",
            "p",
            "--start",
            "2026-05-01T09:00:00Z",
            "--no-progress",
        ],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.fullmatch(
        rf"error: clip {re.escape(str(cut))}: decoding stopped after \d+ of 60 frames "
        r"\(\d\.\d of 6\.0 s\): the file is damaged or cut short; the 0 people seen before "
        "that are in the output",
        errors[0],
    ), errors
    rows = {line.split()[1]: line for line in result.output.splitlines() if ".avi" in line}
    assert "INCOMPLETE" in rows["cut.avi"] and "ok" in rows["whole.avi"].split()
    assert "Traceback" not in result.output


def test_survey_reports_a_damaged_clip_and_exits_1(tmp_path: Path, fake_models: None) -> None:
    cut = _clip(tmp_path / "cut.avi", keep=0.5)
    out = tmp_path / "survey"
    result = runner.invoke(
        aggregator_app,
        [
            "survey",
            "--out",
            str(out),
            "--clip",
            str(cut),
            "--site",
            "s",
            "--spot",
            "p",
            "--start",
            "2026-05-01T09:00:00Z",
            "--no-progress",
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if "cut.avi" in x]
    assert re.fullmatch(
        rf"  s/p \(cut\.avi\): INCOMPLETE: {re.escape(str(cut))}: decoding stopped after \d+ "
        r"of 60 frames \(\d\.\d of 6\.0 s\): the file is damaged or cut short; counted: 0 "
        r"people in \d s of video",
        line,
    ), line
    # What was decoded is still counted, with the footage it covers.
    assert (out / "s.xlsx").exists()
    for export in ("s.persons.csv", "s.persons.parquet"):
        assert (out / export).exists()
        assert f"person list: {out / export}" in result.output

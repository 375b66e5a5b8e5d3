"""``footfall-agent process`` end to end on a real clip and a broken one."""

import hashlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.delivery.jsonl_sink import read_events
from footfall.contract import Direction

pytestmark = pytest.mark.data
runner = CliRunner()


def test_process_writes_events_and_crops_and_survives_a_broken_clip(
    shared_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((shared_dir / "video" / "Megamind.avi").read_bytes()[:5000])
    clips = tmp_path / "clips.toml"
    clips.write_text(
        f'[[clip]]\npath = "{broken}"\nsite = "demo"\nspot = "bad"\n'
        "start = 2026-05-01T09:00:00Z\n"
        f'[[clip]]\npath = "{shared_dir / "video" / "Megamind.avi"}"\nsite = "demo"\n'
        'spot = "cinema"\nstart = 2026-05-01T10:00:00+02:00\nagent = "cam-7"\n',
        encoding="utf-8",
    )
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        # Face mode: Megamind is a kiosk-style face close-up with no body in view.
        'site = "x"\nspot = "y"\nagent = "z"\nmode = "face"\n[detector]\ndetect_every_n_frames = 2\n'
        "[crops]\nsize = 96\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "process",
            "--clips",
            str(clips),
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--models-dir",
            str(models_dir),
            "--annotate",
            str(tmp_path / "annotated"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: clip {broken}: not a video file OpenCV can open"]
    assert "Traceback" not in result.output

    stored = list(read_events(out))
    assert 5 <= len(stored) <= 8  # the 5 faces of the clip, plus up to 3 hair detections
    for item in stored:
        event = item.event
        assert (event.site, event.spot, event.agent) == ("demo", "cinema", "cam-7")
        assert event.first_seen.isoformat().startswith("2026-05-01T08:00")
        assert event.direction in set(Direction)
        assert event.crop is not None and item.crop_path is not None
        data = item.crop_path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == event.crop.sha256
    assert len({s.event.track_id for s in stored}) == len(stored)
    assert (tmp_path / "annotated" / "Megamind.annotated.mp4").stat().st_size > 10_000
    # The summary names both clips and the failure.
    assert "Megamind.avi" in result.output and "FAILED" in result.output


def test_a_real_clip_damaged_mid_stream_is_reported_not_ok(
    shared_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    # The case that was reported as ok: a real clip whose middle third is overwritten decodes a
    # fraction of its 179 frames and then reads as ended.
    data = bytearray((shared_dir / "video" / "tud_stadtmitte.mp4").read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = bytes(third)
    damaged = tmp_path / "tud-damaged.mp4"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "process",
            "--clip",
            str(damaged),
            "--site",
            "demo",
            "--spot",
            "street",
            "--start",
            "2026-05-01T09:00:00Z",
            "--out",
            str(out),
            "--models-dir",
            str(models_dir),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    match = re.fullmatch(
        rf"error: clip {re.escape(str(damaged))}: decoding stopped after (\d+) of 179 frames "
        r"\([\d.]+ of 7\.2 s\): the file is damaged or cut short; the \d+ people seen before "
        "that are in the output",
        error,
    )
    assert match is not None, error
    assert 0 < int(match.group(1)) < 150
    assert "INCOMPLETE" in result.output and "Traceback" not in result.output

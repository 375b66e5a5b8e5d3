"""A clip may name its own agent configuration, which need not repeat the clip's ids."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.clips import load_clips_file
from edge_agent.process import config_for_clip
from edge_agent.vision.settings import DetectorSettings
from footfall.settings import ConfigError


def test_clip_config_applies_to_that_clip_only(tmp_path: Path) -> None:
    (tmp_path / "far-camera.toml").write_text("[detector]\ninput_width = 1280\n", encoding="utf-8")
    (tmp_path / "clips.toml").write_text(
        '[[clip]]\npath = "a.mp4"\nsite = "s"\nspot = "far"\nstart = 2026-05-01T09:00:00+02:00\n'
        'config = "far-camera.toml"\n'
        '[[clip]]\npath = "b.mp4"\nsite = "s"\nspot = "near"\nstart = 2026-05-01T09:00:00Z\n',
        encoding="utf-8",
    )
    far, near = load_clips_file(tmp_path / "clips.toml")
    assert far.config == tmp_path / "far-camera.toml"
    assert far.start == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
    far_cfg, near_cfg = config_for_clip(None, far), config_for_clip(None, near)
    assert (far_cfg.spot, far_cfg.detector.input_width) == ("far", 1280)
    assert (near_cfg.spot, near_cfg.detector.input_width) == (
        "near",
        DetectorSettings().input_width,
    )


def test_a_bad_clip_config_names_its_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[detector]\ninput_width = 5\n", encoding="utf-8")
    (tmp_path / "clips.toml").write_text(
        '[[clip]]\npath = "a.mp4"\nsite = "s"\nspot = "p"\nstart = 2026-05-01T09:00:00Z\nconfig = "bad.toml"\n',
        encoding="utf-8",
    )
    [clip] = load_clips_file(tmp_path / "clips.toml")
    with pytest.raises(ConfigError) as info:
        config_for_clip(None, clip)
    assert info.value.errors[0].startswith("detector.input_width: ")

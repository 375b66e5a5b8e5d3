"""The demo's clips on a fresh machine: the bundled ones are found with no settings, each under
its spot and mode, and the clip that may not be bundled is reported missing, not dropped."""

from pathlib import Path

import pytest

from aggregator.demo import demo_clips, load_samples
from edge_agent.vision.settings import PipelineMode


def test_bundled_samples_play_with_no_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FOOTFALL_SAMPLES_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty user cache
    clips, configs, missing = demo_clips(None, allow_download=False)
    assert {c.spot for c in clips} == {"shop-entrance", "stage-door", "kiosk"}
    assert all(c.path.is_file() for c in clips)
    assert configs["kiosk"].mode is PipelineMode.FACE
    assert configs["shop-entrance"].mode is PipelineMode.PERSON
    assert len(missing) == 1 and "tud-stadtmitte" in missing[0]


def test_every_bundled_sample_has_its_licence_beside_it() -> None:
    bundled = [s for s in load_samples() if s.bundled]
    assert bundled
    for sample in bundled:
        assert "CC BY" in sample.licence or "public domain" in sample.licence
    folder = Path(__file__).resolve().parents[2] / "aggregator" / "samples"
    assert (folder / "LICENSE-CC-BY-4.0.txt").is_file() and (folder / "NOTICE.txt").is_file()

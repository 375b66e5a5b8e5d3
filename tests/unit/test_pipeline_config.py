"""The pipeline's configuration sections: sensible defaults without a file, and cross-field
checks that name the keys involved."""

from pathlib import Path

import pytest

from edge_agent.config import AgentConfig
from edge_agent.vision.settings import CropPolicy, DetectorKind, Units
from footfall.settings import ConfigError, load_config


def _load(tmp_path: Path, text: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text('site = "s"\nspot = "p"\nagent = "a"\n' + text, encoding="utf-8")
    return load_config(AgentConfig, path, env_prefix="FOOTFALL_AGENT", environ={})


def test_defaults_without_a_file() -> None:
    cfg = AgentConfig(site="s", spot="p", agent="a")
    assert cfg.detector.kind is DetectorKind.YUNET
    assert cfg.tracker.max_absence_seconds == 5.0
    assert cfg.counting.units is Units.FRACTION
    assert cfg.classifier.k_best == 5
    assert cfg.crops.policy is CropPolicy.KEEP


def test_process_example_config_is_valid_and_spells_out_the_defaults() -> None:
    path = Path(__file__).resolve().parents[2] / "infra" / "config" / "agent.process.example.toml"
    cfg = load_config(AgentConfig, path, env_prefix="FOOTFALL_AGENT", environ={})
    defaults = AgentConfig(site=cfg.site, spot=cfg.spot, agent=cfg.agent)
    for section in ("detector", "tracker", "counting", "classifier", "crops"):
        assert getattr(cfg, section) == getattr(defaults, section), section


def test_pixel_line_from_toml(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        '[counting]\nunits = "pixels"\nline = [[0, 240], [640, 250]]\nin_towards = "top"\n'
        "hysteresis = 20\n",
    )
    assert cfg.counting.line == ((0.0, 240.0), (640.0, 250.0))
    assert cfg.counting.hysteresis == 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[counting]\nline = [[0, 0.5], [1, 0.5]]\nin_towards = "left"\n',
            "counting: in_towards = 'left' runs along the line; pick a side the line separates "
            "(e.g. top/bottom for a horizontal line), got ",
        ),
        (
            "[counting]\nline = [[0, 0.5], [1.5, 0.5]]\n",
            "counting: line points must be within 0-1 when units = 'fraction', got ",
        ),
        (
            "[counting]\nline = [[0.2, 0.2], [0.2, 0.2]]\n",
            "counting: line needs two different points, got ",
        ),
        (
            '[counting]\nin_from = "top"\nin_to = "top"\n',
            "counting: in_from and in_to must be different edges, got ",
        ),
        (
            "[tracker]\nlow_score = 0.8\nhigh_score = 0.6\n",
            "tracker: low_score (0.8) must not exceed high_score (0.6), got ",
        ),
        (
            "[source]\nreconnect_min_seconds = 10\nreconnect_max_seconds = 5\n",
            "source: reconnect_min_seconds (10.0) must not exceed reconnect_max_seconds (5.0), got ",
        ),
        (
            "[detector]\nscore_threshold = 0.6\n",
            "tracker: low_score (0.5) is below detector.score_threshold (0.6): detections under "
            "the detector's threshold never reach the tracker; lower the detector threshold or "
            "raise tracker.low_score, got ",
        ),
        (
            '[crops]\npolicy = "blur"\n',
            "crops.policy: Input should be 'keep' or 'drop', got 'blur'",
        ),
    ],
    ids=[
        "in-parallel-to-line",
        "fraction-out-of-range",
        "degenerate-line",
        "same-edges",
        "score-order",
        "backoff-order",
        "detector-starves-tracker",
        "bad-crop-policy",
    ],
)
def test_cross_field_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith(expected), info.value.errors[0]

"""Scene-cut detection on synthetic frames."""

import numpy as np
import pytest

from edge_agent.vision.scene_cuts import SceneCutDetector


def test_cut_only_on_a_wholesale_change() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    noisy = np.clip(base.astype(int) + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) // 2
    det = SceneCutDetector(20.0)
    assert [det.is_cut(f) for f in (base, noisy, base, other, other)] == [
        False,
        False,
        False,
        True,
        False,
    ]
    assert det.last_change == 0.0


def test_zero_disables_and_range_is_checked() -> None:
    det = SceneCutDetector(0)
    assert not det.is_cut(np.zeros((8, 8, 3), np.uint8))
    assert not det.is_cut(np.full((8, 8, 3), 255, np.uint8))
    with pytest.raises(ValueError, match=r"threshold must be within 0-255 \(0 disables\), got 300"):
        SceneCutDetector(300)

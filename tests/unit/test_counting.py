"""Direction: line crossings with hysteresis, edge paths, entry and exit sides."""

import numpy as np
import pytest

from edge_agent.vision.counting import (
    CountingLine,
    CountState,
    EdgeCounter,
    build_counter,
    side_of_box,
)
from edge_agent.vision.settings import CountingSettings
from footfall.contract import Direction, Side


def _line() -> CountingLine:
    # Vertical line at x=320 in a 640x480 frame; moving right is 'in'; 20 px hysteresis.
    return CountingLine((320, 0), (320, 480), in_towards="right", hysteresis_px=20)


def _run(line: CountingLine, xs: list[float], y: float = 240) -> tuple[Direction, CountState]:
    state = CountState()
    for x in xs:
        state = line.observe(state, (x, y))
    return line.direction(state, Side.LEFT, Side.RIGHT), state


@pytest.mark.parametrize(
    ("xs", "expected"),
    [
        ([100, 200, 300, 340, 400, 500], Direction.IN),
        ([500, 400, 340, 300, 200], Direction.OUT),
        ([100, 200, 250, 280], Direction.PASSED),  # never reaches the line
        ([100, 335, 100], Direction.PASSED),  # touches the band, turns back
        ([330, 345, 400], Direction.PASSED),  # first seen in the band: no known start side
        ([200, 345, 500], Direction.IN),  # one frame past the band is enough
        ([100, 400, 100, 400, 100], Direction.IN),  # counts once: the first crossing decides
    ],
    ids=[
        "left-to-right-in",
        "right-to-left-out",
        "never-crosses",
        "into-band-and-back",
        "starts-in-band",
        "just-past-band",
        "back-and-forth-counts-once",
    ],
)
def test_line_crossings(xs: list[float], expected: Direction) -> None:
    assert _run(_line(), xs)[0] is expected


def test_jitter_on_the_line_never_double_counts() -> None:
    rng = np.random.default_rng(1)
    # Walks to the line, jitters +-15 px around it for 200 frames, then walks on.
    xs = [*range(100, 320, 10), *(320 + rng.uniform(-15, 15, 200)), *range(320, 500, 10)]
    direction, state = _run(_line(), [float(x) for x in xs])
    assert direction is Direction.IN
    assert state.side == 1


def test_diagonal_line_and_in_side() -> None:
    # Horizontal-ish line across the middle; 'in' is towards the top of the frame.
    line = CountingLine((0, 250), (640, 230), in_towards="top", hysteresis_px=10)
    assert line.signed_distance((320, 100)) > 0
    state = CountState()
    for y in (400, 300, 200, 100):
        state = line.observe(state, (320, y))
    assert line.direction(state, Side.BOTTOM, Side.TOP) is Direction.IN


def test_line_from_fraction_settings() -> None:
    settings = CountingSettings(line=((0.0, 0.5), (1.0, 0.5)), in_towards="bottom", hysteresis=0.05)
    line = CountingLine.from_settings(settings, 640, 480)
    assert line.p1 == (0.0, 240.0) and line.p2 == (640.0, 240.0)
    assert line.hysteresis == pytest.approx(24.0)
    assert line.signed_distance((10, 300)) == pytest.approx(60.0)


def test_line_argument_checks() -> None:
    with pytest.raises(ValueError, match=r"p1 and p2 must differ"):
        CountingLine((1, 1), (1, 1), in_towards="top", hysteresis_px=0)
    with pytest.raises(ValueError, match=r"in_towards='left' runs along the line"):
        CountingLine((0, 1), (10, 1), in_towards="left", hysteresis_px=0)
    with pytest.raises(ValueError, match=r"hysteresis_px must be >= 0, got -1"):
        CountingLine((0, 1), (10, 1), in_towards="top", hysteresis_px=-1)


@pytest.mark.parametrize(
    ("entry", "exit_side", "expected"),
    [
        (Side.LEFT, Side.RIGHT, Direction.IN),
        (Side.RIGHT, Side.LEFT, Direction.OUT),
        (Side.LEFT, Side.LEFT, Direction.PASSED),
        (Side.MIDDLE, Side.RIGHT, Direction.PASSED),
        (Side.BOTTOM, Side.TOP, Direction.PASSED),
    ],
)
def test_edge_counter(entry: Side, exit_side: Side, expected: Direction) -> None:
    counter = EdgeCounter("left", "right")
    assert counter.direction(counter.observe(CountState(), (1, 1)), entry, exit_side) is expected


def test_build_counter_picks_the_mode() -> None:
    assert isinstance(build_counter(CountingSettings(), 640, 480), CountingLine)
    assert isinstance(build_counter(CountingSettings(mode="edges"), 640, 480), EdgeCounter)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([2, 200, 60, 260], Side.LEFT),
        ([600, 200, 638, 260], Side.RIGHT),
        ([300, 5, 340, 45], Side.TOP),
        ([300, 440, 340, 478], Side.BOTTOM),
        ([300, 200, 340, 240], Side.MIDDLE),
        ([1, 1, 40, 60], Side.LEFT),  # corner: the nearer edge relative to the frame size
    ],
)
def test_side_of_box(box: list[float], expected: Side) -> None:
    assert side_of_box(np.array(box, np.float32), 640, 480, 0.08) is expected

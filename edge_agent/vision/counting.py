"""Direction of a person: in / out across a counting line, or by the frame edges they used; and
the side of the picture where they came in and went out.

The counters are pure: each person's counting state is a tiny immutable record the caller
keeps with the person and passes back in, so nothing here grows with the number of people.

Line counting with hysteresis: a person is on a side only once their face centre is more than
``hysteresis`` from the line; in between they keep the side they had. A crossing is counted
when the side changes, so a face jittering on the line never counts twice. A person counts once:
the first crossing decides ``in`` or ``out`` (walking back later does not undo it), and someone
who never crosses is ``passed``.
"""

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.vision.settings import CountingMode, CountingSettings, Edge, Units
from footfall.contract import Direction, Side

F32 = npt.NDArray[np.float32]

_TOWARDS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "top": (0.0, -1.0),
    "bottom": (0.0, 1.0),
}


@dataclass(frozen=True)
class CountState:
    """One person's counting state: the side they are committed to (+1 'in' side, -1 'out'
    side, 0 not yet clear) and the direction of their first crossing, if any."""

    side: int = 0
    crossed: Direction | None = None


class DirectionCounter(Protocol):
    def observe(self, state: CountState, center: tuple[float, float]) -> CountState:
        """The state after seeing the person's face centre at ``center`` (pixels)."""
        ...

    def direction(self, state: CountState, entry: Side, exit_side: Side) -> Direction:
        """The person's direction once their track has ended."""
        ...


class CountingLine:
    """A line from ``p1`` to ``p2`` (pixels); crossing it towards ``in_towards`` is 'in'."""

    def __init__(
        self,
        p1: tuple[float, float],
        p2: tuple[float, float],
        *,
        in_towards: Edge,
        hysteresis_px: float,
    ) -> None:
        dx, dy = p2[0] - p1[0], p2[1] - p1[1]
        length = math.hypot(dx, dy)
        if length < 1e-6:
            raise ValueError(f"p1 and p2 must differ, got {p1} and {p2}")
        if hysteresis_px < 0:
            raise ValueError(f"hysteresis_px must be >= 0, got {hysteresis_px}")
        if in_towards not in _TOWARDS:
            raise ValueError(f"in_towards must be one of {sorted(_TOWARDS)}, got {in_towards!r}")
        normal = (-dy / length, dx / length)
        tx, ty = _TOWARDS[in_towards]
        alignment = normal[0] * tx + normal[1] * ty
        if abs(alignment) < 0.1:
            raise ValueError(f"in_towards={in_towards!r} runs along the line {p1} -> {p2}")
        if alignment < 0:
            normal = (-normal[0], -normal[1])
        self.p1, self.p2 = p1, p2
        self.normal = normal  # unit vector pointing to the 'in' side
        self.hysteresis = hysteresis_px

    @classmethod
    def from_settings(cls, settings: CountingSettings, width: int, height: int) -> "CountingLine":
        (x1, y1), (x2, y2) = settings.line
        hysteresis = settings.hysteresis
        if settings.units is Units.FRACTION:
            x1, x2 = x1 * width, x2 * width
            y1, y2 = y1 * height, y2 * height
            hysteresis *= min(width, height)
        return cls((x1, y1), (x2, y2), in_towards=settings.in_towards, hysteresis_px=hysteresis)

    def signed_distance(self, point: tuple[float, float]) -> float:
        """Distance from the line, positive on the 'in' side."""
        return (point[0] - self.p1[0]) * self.normal[0] + (point[1] - self.p1[1]) * self.normal[1]

    def observe(self, state: CountState, center: tuple[float, float]) -> CountState:
        d = self.signed_distance(center)
        side = 1 if d > self.hysteresis else -1 if d < -self.hysteresis else 0
        if side == 0 or side == state.side:
            return state
        crossed = state.crossed
        if state.side != 0 and crossed is None:
            crossed = Direction.IN if side > 0 else Direction.OUT
        return replace(state, side=side, crossed=crossed)

    def direction(self, state: CountState, entry: Side, exit_side: Side) -> Direction:
        return state.crossed or Direction.PASSED


class EdgeCounter:
    """'in' for a person who came in by ``in_from`` and left by ``in_to``; 'out' for the
    reverse; everyone else 'passed'."""

    def __init__(self, in_from: Edge, in_to: Edge) -> None:
        if in_from == in_to:
            raise ValueError(f"in_from and in_to must differ, got {in_from!r} twice")
        self.in_from, self.in_to = Side(in_from), Side(in_to)

    def observe(self, state: CountState, center: tuple[float, float]) -> CountState:
        return state

    def direction(self, state: CountState, entry: Side, exit_side: Side) -> Direction:
        if (entry, exit_side) == (self.in_from, self.in_to):
            return Direction.IN
        if (entry, exit_side) == (self.in_to, self.in_from):
            return Direction.OUT
        return Direction.PASSED


class GeometryError(ValueError):
    """Counting settings that do not fit the frame; the message names the setting and the frame
    size. Only known once the source delivers its first frame, so ``validate-config`` cannot
    find it."""


def check_geometry(settings: CountingSettings, width: int, height: int) -> None:
    """Raise :class:`GeometryError` unless the counting line lies within a ``width`` x
    ``height`` frame. Fractions are checked by the settings themselves (0-1, hysteresis at most
    half the shorter side); pixels can only be checked here. In edges mode the line is unused."""
    if settings.mode is CountingMode.EDGES or settings.units is Units.FRACTION:
        return
    for x, y in settings.line:
        if not (0 <= x <= width and 0 <= y <= height):
            raise GeometryError(
                f"counting.line: point ({x:g}, {y:g}) is outside the {width}x{height} frame "
                f"(units = 'pixels': x 0-{width}, y 0-{height})"
            )
    if settings.hysteresis > min(width, height) / 2:
        raise GeometryError(
            f"counting.hysteresis: {settings.hysteresis:g} px is more than half the shorter "
            f"side of the {width}x{height} frame, so no crossing could ever be counted"
        )


def build_counter(settings: CountingSettings, width: int, height: int) -> DirectionCounter:
    """The counter for a ``width`` x ``height`` frame; :class:`GeometryError` if the settings
    do not fit it."""
    check_geometry(settings, width, height)
    if settings.mode is CountingMode.EDGES:
        return EdgeCounter(settings.in_from, settings.in_to)
    return CountingLine.from_settings(settings, width, height)


def side_of_box(box: F32, width: int, height: int, margin: float) -> Side:
    """The frame edge ``box`` is nearest to, if within ``margin`` (fraction of the frame's width
    or height) of it; else ``middle`` (a face that appeared or vanished inside the picture)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    gaps = {
        Side.LEFT: x1 / width,
        Side.RIGHT: (width - x2) / width,
        Side.TOP: y1 / height,
        Side.BOTTOM: (height - y2) / height,
    }
    side, gap = min(gaps.items(), key=lambda kv: kv[1])
    return side if gap <= margin else Side.MIDDLE

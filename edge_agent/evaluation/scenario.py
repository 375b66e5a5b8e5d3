"""Scenario videos with exact ground truth, built from real labelled faces.

A :class:`ScenarioSpec` holds the knobs (people, arrivals, paths, speed, pauses, groups,
re-entries, face size, turned-away stretches, blur, noise, brightness, frame rate, resolution,
background). :func:`plan_scenario` turns it into a deterministic plan: for every person a face
from the UTKFace split asked for (``test`` unless told otherwise: the test split is for
reporting, train/val for tuning), a path of key points in time and where the head is turned
away. :class:`ScenarioRenderer` draws frame ``i`` of the plan on demand and, while drawing,
records the ground truth of that frame: every face box and how much of it is visible. Nothing
grows with the video's length unless per-frame boxes are recorded (they are for scoring; a long
memory run switches them off).

Geometry: the counting line is the pipeline's default, the vertical centre, and crossing it
towards the right is ``in``. ``in`` people walk from the left edge to the right edge, ``out``
people the other way, ``passed`` people come in from one edge, turn before the line and leave
by the same edge. A re-entry is a person who left by their exit edge and comes back through it
after 1-8 s, walks a little way in (not across the line) and leaves again: still one person,
with their first direction.

Determinism: the plan comes from one generator seeded with ``spec.seed``; per-frame randomness
(the noise field) from ``(seed, frame index)``; so a frame is the same whether the video is
rendered from the start or entered in the middle.

Why this module stays whole (about 800 lines): the spec, the plan and the renderer are one
contract - the renderer draws exactly the geometry the plan decided and records the ground truth
the plan implies - and every change to a knob touches all three; split, each half would have to
re-state the other's invariants.
"""

import csv
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.evaluation.compositing import (
    Appearance,
    Placement,
    apply_frame_effects,
    clothes_color,
    draw_body,
    draw_head,
    face_box,
    hair_color,
    motion_blur_px,
    noise_fields,
    plain_background,
    visible_fraction,
)
from footfall.contract import AgeGroup, Direction, Gender, age_group_for_years

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]

Split = Literal["train", "val", "test"]
Range = tuple[float, float]


class ScenarioError(Exception):
    """A scenario that cannot be built (missing faces or background, impossible settings)."""


def _check_range(name: str, value: Range, low: float, high: float) -> None:
    a, b = value
    if not low <= a <= b <= high:
        raise ValueError(
            f"{name} must be an interval [a, b] with {low} <= a <= b <= {high}, got {value}"
        )


class ScenarioSpec(BaseModel):
    """Every knob of a scenario. Ranges are ``[low, high]``, drawn uniformly per person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        default="scenario", min_length=1, max_length=64, description="Name in reports"
    )
    seed: int = Field(default=0, ge=0, description="Same seed, same video and ground truth")
    width: int = Field(default=640, ge=160, le=3840, description="Frame width, px")
    height: int = Field(default=480, ge=120, le=2160, description="Frame height, px")
    fps: float = Field(default=15.0, ge=1.0, le=60.0, description="Frame rate")
    people: int = Field(
        default=20, ge=0, le=100_000, description="People who arrive (groups included)"
    )
    arrivals_per_minute: float = Field(
        default=20.0,
        gt=0.0,
        le=600.0,
        description="Mean arrival rate (Poisson) of people or groups",
    )
    duration_seconds: float | None = Field(
        default=None,
        gt=0.0,
        description="Video length; default: until the last person has left, plus one second",
    )
    mix_in: float = Field(
        default=0.45, ge=0.0, le=1.0, description="Share crossing the line left to right"
    )
    mix_out: float = Field(default=0.45, ge=0.0, le=1.0, description="Share crossing right to left")
    mix_passed: float = Field(
        default=0.10, ge=0.0, le=1.0, description="Share turning back before the line"
    )
    walking_speed: Range = Field(default=(2.5, 5.0), description="Face heights per second")
    face_px: Range = Field(default=(40.0, 110.0), description="Face height in px (30-150)")
    lane_spread: float = Field(
        default=0.15,
        ge=0.0,
        le=0.5,
        description="Spread of the walking height (fraction of the frame height); small values "
        "put people on one lane, so people crossing each other occlude each other",
    )
    pause_probability: float = Field(default=0.1, ge=0.0, le=1.0, description="Share who stop once")
    pause_seconds: Range = Field(default=(1.0, 4.0), description="How long a pause lasts")
    group_probability: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of arrivals that are groups walking together",
    )
    group_size: tuple[int, int] = Field(default=(2, 3), description="People in a group")
    reentry_probability: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share who leave the frame and come back once"
    )
    reentry_gap_seconds: Range = Field(default=(1.0, 8.0), description="Time out of the frame")
    turned_away_probability: float = Field(
        default=0.15, ge=0.0, le=1.0, description="Share who turn their head away for a stretch"
    )
    turned_away_seconds: Range = Field(default=(0.5, 2.0), description="Length of that stretch")
    defocus_sigma: Range = Field(default=(0.0, 1.0), description="Gaussian blur of faces, px")
    exposure_seconds: float = Field(
        default=1 / 60,
        ge=0.0,
        le=0.2,
        description="Shutter time: faces blur along their movement by speed x exposure "
        "(1/60 s: an indoor camera in a lit shop; 0 = no motion blur)",
    )
    noise_sigma: float = Field(
        default=2.0, ge=0.0, le=40.0, description="Sensor noise, grey levels"
    )
    brightness: float = Field(default=1.0, gt=0.05, le=3.0, description="Gain on the whole frame")
    person_light: Range = Field(default=(0.85, 1.1), description="Lighting gain per person")
    background: str = Field(
        default="plain",
        description="plain (synthetic), still:PATH (an image), clip:NAME (frames of a shared "
        "clip, real pedestrians included) or median:NAME (a clean still: the per-pixel median "
        "of a shared clip's frames, its people removed); NAME = vtest or tud_stadtmitte",
    )
    faces_split: Split = Field(default="test", description="UTKFace split the faces come from")

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        _check_range("walking_speed", self.walking_speed, 0.2, 20.0)
        _check_range("face_px", self.face_px, 16.0, 400.0)
        _check_range("pause_seconds", self.pause_seconds, 0.0, 120.0)
        _check_range("reentry_gap_seconds", self.reentry_gap_seconds, 0.0, 120.0)
        _check_range("turned_away_seconds", self.turned_away_seconds, 0.0, 60.0)
        _check_range("defocus_sigma", self.defocus_sigma, 0.0, 20.0)
        _check_range("person_light", self.person_light, 0.05, 3.0)
        _check_range("group_size", (float(self.group_size[0]), float(self.group_size[1])), 2, 10)
        if self.mix_in + self.mix_out + self.mix_passed <= 0:
            raise ValueError("mix_in + mix_out + mix_passed must be > 0")
        if self.face_px[1] * 2.5 > self.height:
            raise ValueError(
                f"face_px up to {self.face_px[1]} px does not fit a {self.height} px high frame "
                "(a head and shoulders need about 2.5 face heights)"
            )
        kind = self.background.split(":", 1)[0]
        if kind not in ("plain", "still", "clip", "median"):
            raise ValueError(
                f"background must be plain, still:PATH, clip:NAME or median:NAME, got {self.background!r}"
            )
        return self


# -- ground truth ----------------------------------------------------------------------------------


class GtPerson(BaseModel):
    """One person of the scenario and everything known about them."""

    model_config = ConfigDict(extra="forbid")

    id: int
    face_file: str = Field(description="UTKFace file name (split.csv)")
    gender: Gender
    age: int
    age_group: AgeGroup
    direction: Direction = Field(
        description="in/out/passed; for someone still in view when the video ends, what they did "
        "up to then"
    )
    group: int | None = Field(default=None, description="Group id when walking with others")
    reentry: bool = False
    entry_time: float = Field(description="First time any part of the face is in the frame, s")
    exit_time: float = Field(description="Last such time, s")
    frames: list[int] = Field(
        default_factory=list, description="Frames with the face box in the frame"
    )
    boxes: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="Face box x1, y1, x2, y2 per frame in `frames` (unclipped)",
    )
    visible: list[float] = Field(
        default_factory=list,
        description="Share of the face visible per frame in `frames` (0 when turned away)",
    )


class GroundTruth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: ScenarioSpec
    frames: int
    fps: float
    width: int
    height: int
    line: tuple[tuple[float, float], tuple[float, float]] = ((0.5, 0.0), (0.5, 1.0))
    in_towards: Literal["right"] = "right"
    people: list[GtPerson]

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "GroundTruth":
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


# -- faces -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledFace:
    file: str
    age: int
    gender: Gender


class FaceBank:
    """The UTKFace faces of one split (labels only; images are read when a person is drawn)."""

    def __init__(self, utkface_dir: Path, split: Split) -> None:
        table = utkface_dir / "split.csv"
        if not table.is_file():
            raise ScenarioError(f"UTKFace labels not found: {table}")
        self.images = utkface_dir / "images"
        faces = []
        with table.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["split"] == split:
                    gender = Gender.MALE if row["gender"] == "0" else Gender.FEMALE
                    faces.append(LabelledFace(row["file"], int(row["age"]), gender))
        if not faces:
            raise ScenarioError(f"no UTKFace faces in split {split!r} of {table}")
        self.faces = faces
        self.split = split

    def read(self, file: str) -> U8:
        image = cv2.imread(str(self.images / file))
        if image is None:
            raise ScenarioError(f"cannot read face image {self.images / file}")
        if image.shape[:2] != (200, 200):
            image = cv2.resize(image, (200, 200), interpolation=cv2.INTER_AREA)
        return np.asarray(image, np.uint8)


# -- plan ------------------------------------------------------------------------------------------


@dataclass
class PersonPlan:
    id: int
    face: LabelledFace
    direction: Direction
    times: F64  # key times, s
    xs: F64  # face centre x at the key times
    ys: F64
    size: float  # face height, px
    size_change: float  # relative change of size from first to last key point (perspective)
    turned: list[tuple[float, float]]  # head turned away during these intervals
    hair: tuple[int, int, int]
    clothes: tuple[int, int, int]
    gain: float
    defocus: float
    group: int | None = None
    reentry: bool = False
    bob_phase: float = 0.0

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def at(self, t: float, fps: float, exposure: float = 1 / 60) -> Placement:
        x = float(np.interp(t, self.times, self.xs))
        y = float(np.interp(t, self.times, self.ys))
        progress = (t - self.start) / max(self.end - self.start, 1e-9)
        size = self.size * (1.0 + self.size_change * progress)
        dt = 0.5 / fps
        speed = (
            float(np.interp(t + dt, self.times, self.xs))
            - float(np.interp(t - dt, self.times, self.xs))
        ) / (2 * dt)
        moving = abs(speed) > 1e-3
        # A walking head bobs a little (about 2 steps per second).
        bob = 0.03 * size * math.sin(2 * math.pi * 2.0 * t + self.bob_phase) if moving else 0.0
        turned = any(a <= t < b for a, b in self.turned)
        return Placement(x, y + bob, size, turned, motion_blur_px(speed, exposure))


@dataclass
class ScenarioPlan:
    spec: ScenarioSpec
    people: list[PersonPlan]
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.spec.fps


def _direction(rng: np.random.Generator, spec: ScenarioSpec) -> Direction:
    p = np.array([spec.mix_in, spec.mix_out, spec.mix_passed], np.float64)
    return [Direction.IN, Direction.OUT, Direction.PASSED][int(rng.choice(3, p=p / p.sum()))]


def _path(
    rng: np.random.Generator,
    spec: ScenarioSpec,
    direction: Direction,
    t0: float,
    size: float,
    speed: float,
    lane_y: float,
    offset_x: float = 0.0,
    pause: tuple[float, float] | None = None,
    turn_x: float | None = None,
    from_left: bool | None = None,
) -> tuple[list[float], list[float], list[float], bool]:
    """Key times and points of one walk; returns (times, xs, ys, entered from the left)."""
    w = float(spec.width)
    outside = 1.3 * size  # centre this far outside: face and shoulders fully out of view
    if direction is Direction.IN:
        left = True
    elif direction is Direction.OUT:
        left = False
    else:
        left = bool(rng.random() < 0.5) if from_left is None else from_left
    start_x = -outside if left else w + outside
    start_x += -offset_x if left else offset_x
    drift = float(rng.uniform(-0.06, 0.06)) * spec.height
    if direction is Direction.PASSED:
        # Turn well short of the line: the pipeline's hysteresis (4% of the shorter side) plus
        # a face width, so nobody could fairly be said to have crossed.
        margin = 0.04 * min(spec.width, spec.height) + size
        far = 0.5 * w - margin
        near = min(0.2 * w, far)
        turn = turn_x if turn_x is not None else float(rng.uniform(near, max(near, far)))
        turn = min(turn, max(far, 0.05 * w))
        turn = turn if left else w - turn
        xs = [start_x, turn, start_x]
        ys = [lane_y, lane_y + drift / 2, lane_y + drift]
    else:
        end_x = w + outside if left else -outside
        xs = [start_x, end_x]
        ys = [lane_y, lane_y + drift]
    times = [t0]
    for i in range(1, len(xs)):
        times.append(times[-1] + abs(xs[i] - xs[i - 1]) / speed)
    if pause is not None:
        # Stop at a fraction of the way for a while: insert a held key point.
        frac, hold = pause
        total = times[-1] - times[0]
        tp = times[0] + frac * total
        xp = float(np.interp(tp, times, xs))
        yp = float(np.interp(tp, times, ys))
        k = int(np.searchsorted(times, tp))
        times = [*times[:k], tp, tp + hold, *(t + hold for t in times[k:])]
        xs = [*xs[:k], xp, xp, *xs[k:]]
        ys = [*ys[:k], yp, yp, *ys[k:]]
    return times, xs, ys, left


def _reentry(
    rng: np.random.Generator,
    spec: ScenarioSpec,
    times: list[float],
    xs: list[float],
    ys: list[float],
    size: float,
    speed: float,
) -> None:
    """Append: out of view for a gap, back through the exit edge, a little way in, out again."""
    w = float(spec.width)
    gap = float(rng.uniform(*spec.reentry_gap_seconds))
    exit_x = xs[-1]
    on_right = exit_x > w / 2
    depth = float(rng.uniform(0.08, 0.25)) * w
    limit = 0.5 * w - 0.04 * min(spec.width, spec.height) - size
    depth = min(depth, max(limit, 0.05 * w))
    inner = w - depth if on_right else depth
    back = times[-1] + gap
    times += [back, back + abs(exit_x - inner) / speed, back + 2 * abs(exit_x - inner) / speed]
    xs += [exit_x, inner, exit_x]
    ys += [ys[-1], ys[-1], ys[-1]]


def plan_scenario(spec: ScenarioSpec, bank: FaceBank) -> ScenarioPlan:
    rng = np.random.default_rng(spec.seed)
    n = spec.people
    if n > len(bank.faces):
        raise ScenarioError(f"{n} people but only {len(bank.faces)} faces in split {bank.split!r}")
    faces = [bank.faces[int(i)] for i in rng.permutation(len(bank.faces))[:n]]
    people: list[PersonPlan] = []
    t = float(rng.exponential(60.0 / spec.arrivals_per_minute)) * 0.5
    group_id = 0
    lo, hi = spec.face_px
    while len(people) < n:
        members = 1
        if spec.group_probability > 0 and rng.random() < spec.group_probability:
            members = int(rng.integers(spec.group_size[0], spec.group_size[1] + 1))
        members = min(members, n - len(people))
        direction = _direction(rng, spec)
        speed_fh = float(rng.uniform(*spec.walking_speed))
        base_size = float(rng.uniform(lo, hi))
        depth = (base_size - lo) / max(hi - lo, 1e-9)
        # Perspective: nearer (bigger) faces walk lower in the picture.
        lane = spec.height * (
            0.28 + 0.22 * depth + float(rng.uniform(-1, 1)) * spec.lane_spread / 2
        )
        lane = float(np.clip(lane, 0.75 * hi, spec.height - 1.8 * hi))
        from_left = bool(rng.random() < 0.5)
        turn_frac = float(rng.uniform(0.2, 0.45))
        gid = None
        if members > 1:
            group_id += 1
            gid = group_id
        pause = None
        if rng.random() < spec.pause_probability:
            pause = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(*spec.pause_seconds)))
        for m in range(members):
            size = (
                base_size if m == 0 else float(np.clip(base_size * rng.uniform(0.85, 1.15), lo, hi))
            )
            offset = 0.0 if m == 0 else float(rng.uniform(1.1, 2.0)) * size * m
            y = lane if m == 0 else lane + float(rng.uniform(-0.35, 0.35)) * size
            speed = speed_fh * base_size
            times, xs, ys, _ = _path(
                rng,
                spec,
                direction,
                t,
                size,
                speed,
                y,
                offset_x=offset,
                pause=pause,
                turn_x=turn_frac * spec.width,
                from_left=from_left,
            )
            reentry = members == 1 and rng.random() < spec.reentry_probability
            if reentry:
                _reentry(rng, spec, times, xs, ys, size, speed)
            turned: list[tuple[float, float]] = []
            if rng.random() < spec.turned_away_probability:
                span = times[-1] - times[0]
                length = float(rng.uniform(*spec.turned_away_seconds))
                a = times[0] + float(rng.uniform(0.15, 0.85)) * max(span - length, 0.0)
                turned.append((a, a + length))
            face = faces[len(people)]
            people.append(
                PersonPlan(
                    id=len(people) + 1,
                    face=face,
                    direction=direction,
                    times=np.array(times),
                    xs=np.array(xs),
                    ys=np.array(ys),
                    size=size,
                    size_change=float(rng.uniform(-0.1, 0.1)),
                    turned=turned,
                    hair=hair_color(rng),
                    clothes=clothes_color(rng),
                    gain=float(rng.uniform(*spec.person_light)),
                    defocus=float(rng.uniform(*spec.defocus_sigma)),
                    group=gid,
                    reentry=reentry,
                    bob_phase=float(rng.uniform(0, 2 * math.pi)),
                )
            )
        t += float(rng.exponential(60.0 / spec.arrivals_per_minute))
    if spec.duration_seconds is not None:
        duration = spec.duration_seconds
    else:
        duration = max((p.end for p in people), default=0.0) + 1.0
    return ScenarioPlan(spec, people, max(1, math.ceil(duration * spec.fps)))


# -- backgrounds -----------------------------------------------------------------------------------

_CLIPS = {"vtest": "vtest.avi", "tud_stadtmitte": "tud_stadtmitte.mp4"}


def _clip_path(name: str, shared_dir: Path | None) -> Path:
    if shared_dir is None:
        raise ScenarioError(f"background {name!r} needs the shared folder (FOOTFALL_SHARED_DIR)")
    if name not in _CLIPS:
        raise ScenarioError(f"unknown clip {name!r}; choose one of {sorted(_CLIPS)}")
    path = shared_dir / "video" / _CLIPS[name]
    if not path.is_file():
        raise ScenarioError(f"background clip not found: {path}")
    return path


class Background:
    """Frame ``i``'s background, at the scenario's size."""

    def __init__(self, spec: ScenarioSpec, shared_dir: Path | None) -> None:
        self.size = (spec.width, spec.height)
        kind, _, arg = spec.background.partition(":")
        self._cap: cv2.VideoCapture | None = None
        self._next = 0
        self._clip: Path | None = None
        if kind == "plain":
            self.still: U8 | None = plain_background(spec.width, spec.height, spec.seed)
        elif kind == "still":
            image = cv2.imread(arg)
            if image is None:
                raise ScenarioError(f"cannot read background image {arg!r}")
            self.still = self._fit(np.asarray(image, np.uint8))
        elif kind == "median":
            self.still = self._median(_clip_path(arg, shared_dir))
        else:
            self.still = None
            self._clip = _clip_path(arg, shared_dir)

    def _fit(self, image: U8) -> U8:
        if (image.shape[1], image.shape[0]) == self.size:
            return image
        return np.asarray(cv2.resize(image, self.size, interpolation=cv2.INTER_AREA), np.uint8)

    def _median(self, path: Path, samples: int = 41) -> U8:
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or samples
        frames = []
        for i in np.linspace(0, total - 1, samples).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                frames.append(self._fit(np.asarray(frame, np.uint8)))
        cap.release()
        if not frames:
            raise ScenarioError(f"cannot read frames of {path}")
        return np.asarray(np.median(np.stack(frames), axis=0), np.uint8)

    def frame(self, index: int) -> U8:
        if self.still is not None:
            return self.still.copy()
        assert self._clip is not None
        # Sequential reads, looping; a jump back (a new pass) reopens the clip.
        if self._cap is None or index < self._next:
            if self._cap is not None:
                self._cap.release()
            self._cap = cv2.VideoCapture(str(self._clip))
            self._next = 0
        while True:
            ok, image = self._cap.read()
            if not ok:
                self._cap.release()
                self._cap = cv2.VideoCapture(str(self._clip))
                ok, image = self._cap.read()
                if not ok:
                    raise ScenarioError(f"cannot read frames of {self._clip}")
            self._next += 1
            if self._next > index:
                return self._fit(np.asarray(image, np.uint8))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# -- rendering -------------------------------------------------------------------------------------


@dataclass
class _Record:
    first_x: float = 0.0
    min_x: float = math.inf
    max_x: float = -math.inf
    frames: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    first: float | None = None
    last: float | None = None


class ScenarioRenderer:
    """Draws the frames of a plan in order and collects their ground truth.

    ``record_boxes=False`` keeps only entry/exit times per person (a long run's memory must not
    grow with its length)."""

    def __init__(
        self,
        plan: ScenarioPlan,
        bank: FaceBank,
        *,
        shared_dir: Path | None = None,
        record_boxes: bool = True,
    ) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.bank = bank
        self.record_boxes = record_boxes
        self.background = Background(self.spec, shared_dir)
        self._noise = noise_fields(
            self.spec.width, self.spec.height, self.spec.noise_sigma, self.spec.seed
        )
        self._records: dict[int, _Record] = {}
        self._chips: dict[int, U8] = {}
        # People sorted by start; a cursor and an active list keep each frame's work to the
        # people in view.
        self._order = sorted(plan.people, key=lambda p: p.start)
        self._cursor = 0
        self._active: list[PersonPlan] = []
        self._labels = np.zeros((self.spec.height, self.spec.width), np.int32)
        self._done = 0

    @cached_property
    def frame_count(self) -> int:
        return self.plan.frames

    def time_of(self, index: int) -> float:
        return index / self.spec.fps

    def _chip(self, person: PersonPlan) -> U8:
        chip = self._chips.get(person.id)
        if chip is None:
            chip = self._chips[person.id] = self.bank.read(person.face.file)
        return chip

    def render(self, index: int) -> U8:
        """Frame ``index``; frames must be asked for in increasing order."""
        if index < self._done:
            raise ValueError(
                f"frames are rendered in order: asked for {index} after {self._done - 1}"
            )
        self._done = index + 1
        t = self.time_of(index)
        while self._cursor < len(self._order) and self._order[self._cursor].start <= t:
            self._active.append(self._order[self._cursor])
            self._cursor += 1
        gone = [p for p in self._active if p.end < t]
        for person in gone:
            self._chips.pop(person.id, None)
        self._active = [p for p in self._active if p.end >= t]

        frame = self.background.frame(index)
        labels = self._labels
        labels.fill(0)
        placed = [(p, p.at(t, self.spec.fps, self.spec.exposure_seconds)) for p in self._active]
        placed.sort(key=lambda pa: pa[1].size)  # far (small) first, near last
        faces: list[tuple[PersonPlan, Placement, tuple[U8, tuple[int, int]] | None]] = []
        for person, at in placed:
            look = Appearance(
                person_id=person.id,
                chip=self._chip(person),
                hair=person.hair,
                clothes=person.clothes,
                gain=person.gain,
                defocus=person.defocus * at.size / 100.0,
            )
            draw_body(frame, labels, look, at)
            drawn = draw_head(frame, labels, look, at)
            faces.append((person, at, drawn))
        for person, at, drawn in faces:
            box = face_box(at.cx, at.cy, at.size)
            inside = (
                box[2] > 0 and box[0] < self.spec.width and box[3] > 0 and box[1] < self.spec.height
            )
            if not inside:
                continue
            visible = 0.0 if drawn is None else visible_fraction(labels, person.id, *drawn)
            rec = self._records.setdefault(person.id, _Record())
            if rec.first is None:
                rec.first = t
                rec.first_x = at.cx
            rec.last = t
            rec.min_x, rec.max_x = min(rec.min_x, at.cx), max(rec.max_x, at.cx)
            if self.record_boxes:
                rec.frames.append(index)
                rec.boxes.append(tuple(round(v, 1) for v in box))  # type: ignore[arg-type]
                rec.visible.append(round(visible, 3))
        noise = (
            self._noise[
                int(np.random.default_rng((self.spec.seed, index)).integers(len(self._noise)))
            ]
            if self._noise
            else None
        )
        return apply_frame_effects(frame, self.spec.brightness, noise)

    def frames(self) -> Iterator[tuple[int, U8]]:
        for index in range(self.frame_count):
            yield index, self.render(index)

    def _direction(self, person: PersonPlan, rec: _Record) -> Direction:
        """The planned direction, or, for someone still walking when the video ends, what they
        did within it: crossed the centre line one way, or not (yet)."""
        if person.end <= self.time_of(self._done - 1):
            return person.direction
        middle = self.spec.width / 2
        if rec.first_x < middle < rec.max_x:
            return Direction.IN
        if rec.first_x > middle > rec.min_x:
            return Direction.OUT
        return Direction.PASSED

    def ground_truth(self) -> GroundTruth:
        """The ground truth of the frames rendered so far (all of them after :meth:`frames`)."""
        people = []
        for person in self.plan.people:
            rec = self._records.get(person.id)
            if rec is None or rec.first is None or rec.last is None:
                continue  # never in view within the rendered frames
            people.append(
                GtPerson(
                    id=person.id,
                    face_file=person.face.file,
                    gender=person.face.gender,
                    age=person.face.age,
                    age_group=age_group_for_years(person.face.age),
                    direction=self._direction(person, rec),
                    group=person.group,
                    reentry=person.reentry,
                    entry_time=round(rec.first, 3),
                    exit_time=round(rec.last, 3),
                    frames=rec.frames,
                    boxes=rec.boxes,
                    visible=rec.visible,
                )
            )
        return GroundTruth(
            spec=self.spec,
            frames=self._done,
            fps=self.spec.fps,
            width=self.spec.width,
            height=self.spec.height,
            people=people,
        )

    def close(self) -> None:
        self.background.close()


def utkface_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "utkface"


def build_renderer(
    spec: ScenarioSpec, shared_dir: Path, *, record_boxes: bool = True
) -> ScenarioRenderer:
    bank = FaceBank(utkface_dir(shared_dir), spec.faces_split)
    return ScenarioRenderer(
        plan_scenario(spec, bank), bank, shared_dir=shared_dir, record_boxes=record_boxes
    )


def write_scenario(spec: ScenarioSpec, shared_dir: Path, video: Path, gt_path: Path) -> GroundTruth:
    """Render the whole scenario into ``video`` (mp4v, the codec every OpenCV wheel can write)
    and its ground truth into ``gt_path`` (JSON)."""
    renderer = build_renderer(spec, shared_dir)
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, (spec.width, spec.height)
    )
    if not writer.isOpened():
        raise ScenarioError(f"cannot write video {video}")
    try:
        for _, frame in renderer.frames():
            writer.write(frame)
    finally:
        writer.release()
        renderer.close()
    gt = renderer.ground_truth()
    gt.save(gt_path)
    return gt

"""Drawing one synthetic person into a frame: a body, a head, and either a real face (a UTKFace
chip under a soft elliptical mask) or the back of the head.

The face box of a drawn face is known exactly: UTKFace chips are aligned crops in which the
face (by YuNet's own convention, measured as the median box over 300 training chips) spans
``CHIP_FACE_BOX`` of the 200x200 chip; a person drawn with face height ``s`` is the chip scaled
so that box is ``s`` high, and their ground-truth box is ``DRAWN_FACE_BOX`` around the face
centre (the same convention measured on the drawn composites).

Every drawing also writes the person's id into a label image, so after all people of a frame are
drawn (far to near) the share of each face still visible is counted exactly: that is how
occlusion enters the ground truth.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]

CHIP_SIZE = 200
# x1, y1, x2, y2 of the face within a UTKFace chip (median YuNet box, 300 training chips).
CHIP_FACE_BOX = (14.0, 0.5, 184.0, 194.0)
_CHIP_FACE_H = CHIP_FACE_BOX[3] - CHIP_FACE_BOX[1]
_CHIP_FACE_CX = (CHIP_FACE_BOX[0] + CHIP_FACE_BOX[2]) / 2
_CHIP_FACE_CY = (CHIP_FACE_BOX[1] + CHIP_FACE_BOX[3]) / 2


# The face box of a drawn face relative to its centre, in face heights: YuNet's median box at
# full resolution over 300 composites of training faces (40-140 px) on plain backgrounds.
# The soft mask and the hair make it slightly narrower than the chip's own box, a little higher.
DRAWN_FACE_BOX = (-0.419, -0.532, 0.416, 0.491)


def face_box(cx: float, cy: float, size: float) -> tuple[float, float, float, float]:
    """The ground-truth face box (x1, y1, x2, y2) of a face drawn ``size`` px high at (cx, cy)."""
    x1, y1, x2, y2 = DRAWN_FACE_BOX
    return cx + x1 * size, cy + y1 * size, cx + x2 * size, cy + y2 * size


def soft_mask(size: int, axes: tuple[float, float], feather: float, power: float = 2.0) -> F32:
    """An alpha mask of the superellipse ``|x/a|^p + |y/b|^p <= 1`` (p = 2: an ellipse, larger
    p: a rounded square): 1 inside, 0 outside, a ramp about ``feather`` px wide."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    r = (np.abs((xx - c) / axes[0]) ** power + np.abs((yy - c) / axes[1]) ** power) ** (1 / power)
    edge = feather / max(axes)
    return np.asarray(np.clip((1.0 - r) / max(edge, 1e-6), 0.0, 1.0), np.float32)


# The face mask on a chip: nearly the whole chip, corners rounded and edges feathered. The
# age/gender models look at about the whole 200 px chip (hair, ears, jaw line; the aligned 64 px
# chip spans ~205 px of it), so a tight ellipse around the face would hide their cues: with an
# ellipse of the face box, gender accuracy on drawn faces fell from 94% to 78% (250 val faces).
CHIP_MASK: F32 = soft_mask(CHIP_SIZE, (100.0, 100.0), 10.0, power=8.0)


@dataclass(frozen=True)
class Appearance:
    """What stays the same for one person while they are drawn."""

    person_id: int
    chip: U8  # 200x200 BGR UTKFace chip
    hair: tuple[int, int, int]
    clothes: tuple[int, int, int]
    gain: float  # lighting on this person (1 = as photographed)
    defocus: float  # Gaussian sigma in px at the drawn size


@dataclass(frozen=True)
class Placement:
    """Where and how a person is drawn in one frame."""

    cx: float  # face centre, frame px
    cy: float
    size: float  # face height, px
    turned_away: bool
    motion_px: float  # horizontal blur length (movement during the exposure), px


def _clip_roi(
    x0: int, y0: int, w: int, h: int, width: int, height: int
) -> tuple[slice, slice, slice, slice] | None:
    """Frame and patch slices of a ``w`` x ``h`` patch placed at (x0, y0), cut to the frame."""
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (
        slice(fy0, fy1),
        slice(fx0, fx1),
        slice(fy0 - y0, fy1 - y0),
        slice(fx0 - x0, fx1 - x0),
    )


def _shade(color: tuple[int, int, int], gain: float) -> tuple[int, int, int]:
    return (
        min(255, round(color[0] * gain)),
        min(255, round(color[1] * gain)),
        min(255, round(color[2] * gain)),
    )


def draw_body(frame: U8, labels: I32, look: Appearance, at: Placement) -> None:
    """Shoulders and torso below the head, in the person's clothes colour."""
    s = at.size
    height = frame.shape[0]
    color = _shade(look.clothes, look.gain)
    neck_y = at.cy + 0.55 * s
    shoulders = (round(at.cx), round(neck_y + 0.55 * s))
    axes = (max(1, round(1.15 * s)), max(1, round(0.55 * s)))
    top = round(neck_y + 0.55 * s)
    x1, x2 = round(at.cx - 1.1 * s), round(at.cx + 1.1 * s)
    y2 = min(height, round(at.cy + 4.0 * s))
    for image, value in ((frame, color), (labels, (look.person_id, 0, 0))):
        cv2.ellipse(image, shoulders, axes, 0, 180, 360, value, -1, cv2.LINE_AA)
        if top < y2:
            cv2.rectangle(image, (x1, top), (x2, y2), value, -1)
    neck = (round(at.cx - 0.18 * s), round(at.cy + 0.3 * s), round(at.cx + 0.18 * s), top)
    skin = _shade((120, 150, 190), look.gain)
    for image, value in ((frame, skin), (labels, (look.person_id, 0, 0))):
        cv2.rectangle(image, neck[:2], neck[2:], value, -1)


def _hair_blob(
    frame: U8, labels: I32, look: Appearance, center: tuple[float, float], axes: tuple[float, float]
) -> None:
    c = (round(center[0]), round(center[1]))
    ax = (max(1, round(axes[0])), max(1, round(axes[1])))
    cv2.ellipse(frame, c, ax, 0, 0, 360, _shade(look.hair, look.gain), -1, cv2.LINE_AA)
    cv2.ellipse(labels, c, ax, 0, 0, 360, (look.person_id, 0, 0), -1)


def draw_head(
    frame: U8, labels: I32, look: Appearance, at: Placement
) -> tuple[U8, tuple[int, int]] | None:
    """The head: hair behind, then the face (or, turned away, the back of the head).

    Returns the face's binary mask and its top-left corner in frame pixels (for counting how
    much of it stays visible), or None when no face is shown."""
    s = at.size
    # The chip ends at the forehead: a hair ellipse behind it gives the head its top and sides.
    _hair_blob(frame, labels, look, (at.cx, at.cy - 0.12 * s), (0.52 * s, 0.62 * s))
    if at.turned_away:
        # Back of the head: hair over the whole face area, with a little texture so it is not
        # a flat disc. No face features, so a face detector should find nothing here.
        _hair_blob(frame, labels, look, (at.cx, at.cy + 0.02 * s), (0.50 * s, 0.58 * s))
        return None
    scale = s / _CHIP_FACE_H
    side = max(2, round(CHIP_SIZE * scale))
    scale = side / CHIP_SIZE
    x0 = round(at.cx - _CHIP_FACE_CX * scale)
    y0 = round(at.cy - _CHIP_FACE_CY * scale)
    height, width = frame.shape[:2]
    roi = _clip_roi(x0, y0, side, side, width, height)
    if roi is None:
        return None
    interp = cv2.INTER_AREA if side < CHIP_SIZE else cv2.INTER_LINEAR
    patch = cv2.resize(look.chip, (side, side), interpolation=interp)
    alpha = cv2.resize(CHIP_MASK, (side, side), interpolation=cv2.INTER_LINEAR)
    if look.defocus > 0.3:
        patch = cv2.GaussianBlur(patch, (0, 0), look.defocus)
    if at.motion_px >= 2.0:
        k = min(round(at.motion_px), side)
        kernel = np.full((1, k), 1.0 / k, np.float32)
        patch = cv2.filter2D(patch, -1, kernel)
    fy, fx, py, px = roi
    a = alpha[py, px][..., None]
    region = frame[fy, fx].astype(np.float32)
    face = patch[py, px].astype(np.float32) * look.gain
    frame[fy, fx] = np.clip(region * (1.0 - a) + face * a, 0, 255).astype(np.uint8)
    solid = (alpha >= 0.5).astype(np.uint8)
    labels[fy, fx][solid[py, px] > 0] = look.person_id
    return solid, (x0, y0)


def visible_fraction(labels: I32, person_id: int, mask: U8, corner: tuple[int, int]) -> float:
    """Share of a drawn face's mask that still shows ``person_id`` in the label image (nearer
    people drawn over it, or the frame edge, hide the rest)."""
    total = int(mask.sum())
    if total == 0:
        return 0.0
    height, width = labels.shape[:2]
    roi = _clip_roi(corner[0], corner[1], mask.shape[1], mask.shape[0], width, height)
    if roi is None:
        return 0.0
    fy, fx, py, px = roi
    shown = int(((labels[fy, fx] == person_id) & (mask[py, px] > 0)).sum())
    return shown / total


def plain_background(width: int, height: int, seed: int) -> U8:
    """A synthetic shop front: a floor/wall gradient with a few panels (no shared data needed)."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = rng.uniform(120, 200, 3).astype(np.float32)
    bottom = rng.uniform(50, 110, 3).astype(np.float32)
    image = np.broadcast_to(top * (1 - ys) + bottom * ys, (height, width, 3)).copy()
    for _ in range(6):
        x1 = int(rng.integers(0, width))
        y1 = int(rng.integers(0, height // 2))
        w = int(rng.integers(width // 12, width // 4))
        h = int(rng.integers(height // 10, height // 3))
        color = tuple(float(v) for v in rng.uniform(40, 220, 3))
        cv2.rectangle(image, (x1, y1), (x1 + w, y1 + h), color, -1)
    texture = rng.normal(0.0, 3.0, (height, width, 1)).astype(np.float32)
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def hair_color(rng: np.random.Generator) -> tuple[int, int, int]:
    base = [(25, 25, 30), (30, 45, 70), (40, 70, 110), (90, 140, 190), (150, 150, 155)]
    b, g, r = base[int(rng.integers(0, len(base)))]
    jitter = rng.integers(-10, 11, 3)
    return (
        int(np.clip(b + jitter[0], 0, 255)),
        int(np.clip(g + jitter[1], 0, 255)),
        int(np.clip(r + jitter[2], 0, 255)),
    )


def clothes_color(rng: np.random.Generator) -> tuple[int, int, int]:
    hue = rng.uniform(0, 180)
    hsv = np.array([[[hue, rng.uniform(40, 220), rng.uniform(40, 220)]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def motion_blur_px(speed_px_s: float, exposure_seconds: float) -> float:
    """How far a face moves while the shutter is open (it does not depend on the frame rate)."""
    return abs(speed_px_s) * exposure_seconds


def noise_fields(
    width: int, height: int, sigma: float, seed: int, count: int = 8
) -> list[npt.NDArray[np.int16]]:
    """A few sensor-noise fields, picked per frame: drawing a fresh one per frame would cost more
    than the rest of the frame together."""
    if sigma <= 0:
        return []
    rng = np.random.default_rng(seed)
    return [
        np.round(rng.normal(0.0, sigma, (height, width, 3))).astype(np.int16) for _ in range(count)
    ]


def apply_frame_effects(frame: U8, gain: float, noise: npt.NDArray[np.int16] | None) -> U8:
    out = frame
    if not math.isclose(gain, 1.0):
        out = np.asarray(cv2.convertScaleAbs(out, alpha=gain), np.uint8)
    if noise is not None:
        out = np.asarray(cv2.add(out, noise, dtype=cv2.CV_8U), np.uint8)
    return np.asarray(out, np.uint8)

"""A small appearance descriptor per detected face, for telling people apart when motion alone
cannot: someone who was hidden, turned away or out of the frame for a few seconds comes back,
and the tracker must decide whether it is the person it lost or a stranger.

No model: a few colour histograms around the face box, each cheap and robust to the pose and
size changes of a few seconds, and a coarse grey pattern of the face itself. Regions, relative to
the face box (``h`` its height, ``cx`` its centre):

- ``hair``: a band just above the box (hair, a hat, a hood);
- ``face``: the inner face (skin tone, glasses, a beard);
- ``torso``: a patch about one face height below the chin (the clothes) — usually the most
  telling cue in a shop, and cut off when the person is near the bottom edge or behind someone;
- ``pattern``: the inner face as an 8x8 grey thumbnail, mean removed, unit length.

A colour region is described by an HSV histogram: 12 hues x 2 saturations for coloured pixels
and 4 grey levels for the others (dark hair and black coats have no reliable hue), normalised
and square-rooted, so the dot product of two descriptors is their Bhattacharyya coefficient.
A region that is mostly outside the frame, too small, or overlapped by another detected person's
regions is marked invalid for that observation and ignored.

Everything is pure (frame and boxes in, arrays out); the tracker keeps a running average per
track (:mod:`edge_agent.vision.tracking`).
"""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]

PARTS = ("hair", "face", "torso", "pattern")
"""The descriptor's parts, in order."""

_PATCH = {"hair": (16, 6), "face": (8, 8), "torso": (16, 12)}  # (w, h) the region is scaled to
_PATTERN_SIZE = 8

_HUES, _SATS, _GREYS = 12, 2, 4
_COLOUR_BINS = _HUES * _SATS + _GREYS
_MIN_SAT, _MIN_VAL, _SAT_SPLIT = 50, 50, 130

_SIZES = {"hair": _COLOUR_BINS, "face": _COLOUR_BINS, "torso": _COLOUR_BINS}
_SIZES["pattern"] = _PATTERN_SIZE * _PATTERN_SIZE
OFFSETS = np.cumsum([0] + [_SIZES[p] for p in PARTS])
"""Where each part starts in a descriptor (part ``i`` is ``OFFSETS[i]:OFFSETS[i + 1]``)."""
DIM = int(OFFSETS[-1])

_MIN_INSIDE = 0.7  # least share of a region inside the frame
_MIN_PX = 3  # least side of a region in pixels
_MAX_OVERLAP = 0.25  # most share of a region covered by another person's regions
_BORDER_PX = 1.0  # a face box this close to the frame border touches it (boxes are clipped)
_NEAR_BORDER = 0.5  # in face heights: a face this close to the border is about to leave


@dataclass(frozen=True)
class Metric:
    """How one kind of descriptor (of faces, of bodies) is compared: per-part distance
    ``scales`` (``1 - similarity`` below which only 5 % of strangers fall), part ``weights``,
    and the least ``min_weight`` of parts seen in both for a distance to be given at all."""

    scales: F64
    weights: F64
    min_weight: float


@dataclass(frozen=True)
class Descriptors:
    """One descriptor per detection: ``values`` (N, DIM), each part unit length; ``valid``
    (N, len(PARTS)) saying which parts were seen well enough to use; ``edge`` (N, 2), the
    outward direction of the frame border a face is near (within half its height; e.g.
    ``(1, 0)`` at the right border, zero when near none): a face that vanishes there has
    probably left the picture; and ``clipped`` (N,), whether the box touches the border (part of
    the face is outside the picture, so what is seen of it is not the whole face)."""

    values: F32
    valid: B
    edge: F32
    clipped: B
    metric: "Metric | None" = None
    """How these descriptors compare (None: as faces, :data:`FACE_METRIC`)."""

    def __post_init__(self) -> None:
        n = self.values.shape[0]
        if (
            self.values.shape != (n, DIM)
            or self.valid.shape != (n, len(PARTS))
            or self.edge.shape != (n, 2)
            or self.clipped.shape != (n,)
        ):
            raise ValueError(
                f"values must be (N, {DIM}), valid (N, {len(PARTS)}), edge (N, 2) and clipped "
                f"(N,), got {self.values.shape}, {self.valid.shape}, {self.edge.shape} and "
                f"{self.clipped.shape}"
            )

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def empty(cls, n: int = 0) -> "Descriptors":
        return cls(
            np.zeros((n, DIM), np.float32),
            np.zeros((n, len(PARTS)), bool),
            np.zeros((n, 2), np.float32),
            np.zeros(n, bool),
        )


_COLOUR_PARTS = ("hair", "face", "torso")


def _regions(boxes: F32) -> F64:
    """The colour regions of every face box: (N, 3, 4) as x1, y1, x2, y2 in frame pixels, in
    the order of ``_COLOUR_PARTS``."""
    b = boxes.astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w, h = np.maximum(x2 - x1, 1.0), np.maximum(y2 - y1, 1.0)
    cx = (x1 + x2) / 2
    hair = (cx - 0.35 * h, y1 - 0.22 * h, cx + 0.35 * h, y1 + 0.03 * h)
    # The inner face follows the box's own width: a face at the frame edge is clipped.
    face = (x1 + 0.2 * w, y1 + 0.18 * h, x2 - 0.2 * w, y2 - 0.12 * h)
    torso = (cx - 0.8 * h, y2 + 0.6 * h, cx + 0.8 * h, y2 + 1.6 * h)
    return np.stack([np.stack(r, axis=1) for r in (hair, face, torso)], axis=1)


def _covered(regions: F64, boxes: F32, occluders: B | None = None) -> F64:
    """Share of each region (N, 3) covered by the regions and face boxes of the other people
    (summed, so it can exceed 1): their pixels would mix into this person's histogram.
    ``occluders[i, j]`` says whether ``j`` can hide ``i`` (default: everyone can)."""
    n = len(regions)
    covers = np.concatenate([regions, boxes.astype(np.float64)[:, None, :]], axis=1)  # (N, 4, 4)
    a = regions[:, :, None, None, :]  # (N, 3, 1, 1, 4)
    c = covers[None, None, :, :, :]  # (1, 1, N, 4, 4)
    w = np.minimum(a[..., 2], c[..., 2]) - np.maximum(a[..., 0], c[..., 0])
    h = np.minimum(a[..., 3], c[..., 3]) - np.maximum(a[..., 1], c[..., 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)  # (N, 3, N, 4)
    inter[np.arange(n), :, np.arange(n), :] = 0.0  # one's own regions do not count
    if occluders is not None:
        inter *= occluders[:, None, :, None]
    area = np.maximum(
        (regions[..., 2] - regions[..., 0]) * (regions[..., 3] - regions[..., 1]), 1e-9
    )
    return np.asarray(inter.sum(axis=(2, 3)) / area)


def colour_histograms(pixels: U8, patch_of: npt.NDArray[np.intp], patches: int) -> F32:
    """The colour histograms of ``patches`` patches whose pixels (P, 3 BGR) are stacked in
    ``pixels``, ``patch_of`` giving each pixel's patch: (patches, _COLOUR_BINS), each
    square-rooted and unit length.

    Soft binning: a pixel splits its weight between the two nearest hues (a circle), the two
    nearest saturation or grey levels, and between "coloured" and "grey" by how saturated and
    bright it is. Hard bins would call two flat colours either identical (same bin) or
    unrelated (neighbouring bins); soft ones make the similarity fall off smoothly."""
    hsv = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    h, s, v = (hsv[:, i].astype(np.float32) for i in range(3))
    chroma = np.clip((s - _MIN_SAT) / 40.0 + 0.5, 0.0, 1.0) * np.clip(
        (v - _MIN_VAL) / 40.0 + 0.5, 0.0, 1.0
    )
    hp = h * (_HUES / 180.0) - 0.5
    h0 = np.floor(hp)
    hw = hp - h0
    h0i = h0.astype(np.intp) % _HUES
    h1i = (h0i + 1) % _HUES
    sp = np.clip((s - _MIN_SAT) / (255.0 - _MIN_SAT) * _SATS - 0.5, 0.0, _SATS - 1.0)
    s0 = np.minimum(np.floor(sp), _SATS - 2).astype(np.intp)
    sw = sp - s0
    vp = np.clip(v / 256.0 * _GREYS - 0.5, 0.0, _GREYS - 1.0)
    v0 = np.minimum(np.floor(vp), _GREYS - 2).astype(np.intp)
    vw = vp - v0
    base = patch_of * _COLOUR_BINS
    grey = _HUES * _SATS
    index = np.concatenate(
        [
            base + h0i * _SATS + s0,
            base + h0i * _SATS + s0 + 1,
            base + h1i * _SATS + s0,
            base + h1i * _SATS + s0 + 1,
            base + grey + v0,
            base + grey + v0 + 1,
        ]
    )
    weight = np.concatenate(
        [
            chroma * (1 - hw) * (1 - sw),
            chroma * (1 - hw) * sw,
            chroma * hw * (1 - sw),
            chroma * hw * sw,
            (1 - chroma) * (1 - vw),
            (1 - chroma) * vw,
        ]
    )
    counts = np.bincount(index, weights=weight, minlength=patches * _COLOUR_BINS)
    hist = np.sqrt(counts.reshape(patches, _COLOUR_BINS).astype(np.float32))
    norm = np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-9)
    return np.asarray(hist / norm, np.float32)


def describe(frame: U8, boxes: F32) -> Descriptors:
    """Descriptors of the faces ``boxes`` (N, 4: x1, y1, x2, y2 in frame pixels) in ``frame``
    (BGR uint8)."""
    if len(boxes) == 0:
        return Descriptors.empty()
    return describe_regions(frame, boxes, _regions(boxes), FACE_METRIC)


def describe_regions(
    frame: U8, boxes: F32, regions: F64, metric: Metric, occluders: B | None = None
) -> Descriptors:
    """Descriptors of the objects ``boxes`` (N, 4) whose three colour regions are ``regions``
    (N, 3, 4, frame pixels; the grey pattern is taken from the second), compared by ``metric``.
    A region mostly outside the frame, too small or covered by the others' (those
    ``occluders[i, j]`` allows; default all) is left invalid."""
    n = len(boxes)
    out = Descriptors.empty(n)
    out = Descriptors(out.values, out.valid, out.edge, out.clipped, metric)
    if n == 0:
        return out
    height, width = frame.shape[:2]
    b = boxes.astype(np.float64)
    gaps = np.stack([b[:, 0], b[:, 1], width - b[:, 2], height - b[:, 3]], axis=1)
    out.clipped[:] = (gaps <= _BORDER_PX).any(axis=1)
    near = gaps <= _NEAR_BORDER * np.maximum(b[:, 3] - b[:, 1], 1.0)[:, None]
    out.edge[:, 0] = near[:, 2].astype(np.float32) - near[:, 0]
    out.edge[:, 1] = near[:, 3].astype(np.float32) - near[:, 1]
    covered = _covered(regions, boxes, occluders)
    area = (regions[..., 2] - regions[..., 0]) * (regions[..., 3] - regions[..., 1])
    ix1 = np.clip(np.round(regions[..., 0]), 0, width).astype(np.intp)
    iy1 = np.clip(np.round(regions[..., 1]), 0, height).astype(np.intp)
    ix2 = np.clip(np.round(regions[..., 2]), 0, width).astype(np.intp)
    iy2 = np.clip(np.round(regions[..., 3]), 0, height).astype(np.intp)
    inside = (ix2 - ix1) * (iy2 - iy1)
    usable = (
        (ix2 - ix1 >= _MIN_PX)
        & (iy2 - iy1 >= _MIN_PX)
        & (inside >= _MIN_INSIDE * area)
        & (covered <= _MAX_OVERLAP)
    )  # (N, 3)
    pixels: list[U8] = []
    owners: list[tuple[int, int]] = []
    for i, k in zip(*np.nonzero(usable), strict=True):
        part = _COLOUR_PARTS[k]
        roi = frame[iy1[i, k] : iy2[i, k], ix1[i, k] : ix2[i, k]]
        patch = cv2.resize(roi, _PATCH[part], interpolation=cv2.INTER_AREA)
        pixels.append(np.asarray(patch, np.uint8).reshape(-1, 3))
        owners.append((int(i), int(k)))
        if k == 1:
            size = (_PATTERN_SIZE, _PATTERN_SIZE)
            grey = cv2.cvtColor(
                np.asarray(cv2.resize(roi, size, interpolation=cv2.INTER_AREA), np.uint8),
                cv2.COLOR_BGR2GRAY,
            )
            pattern = grey.astype(np.float32).reshape(-1)
            pattern -= pattern.mean()
            norm = float(np.linalg.norm(pattern))
            if norm > 1e-3:
                p = PARTS.index("pattern")
                out.values[i, OFFSETS[p] : OFFSETS[p + 1]] = pattern / norm
                out.valid[i, p] = True
    if pixels:
        patch_of = np.repeat(np.arange(len(pixels)), [len(p) for p in pixels])
        hists = colour_histograms(np.concatenate(pixels), patch_of, len(pixels))
        for (i, k), hist in zip(owners, hists, strict=True):
            p = PARTS.index(_COLOUR_PARTS[k])
            out.values[i, OFFSETS[p] : OFFSETS[p + 1]] = hist
            out.valid[i, p] = True
    return out


def part_similarity(a: F32, b: F32) -> F64:
    """Per-part similarity of every descriptor in ``a`` (T, DIM) with every one in ``b`` (N, DIM):
    (T, N, len(PARTS)), 1 for identical. Colour parts: the Bhattacharyya coefficient of the two
    histograms; the grey pattern: its correlation, clipped at 0."""
    out = np.empty((len(a), len(b), len(PARTS)))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for k in range(len(PARTS)):
        lo, hi = int(OFFSETS[k]), int(OFFSETS[k + 1])
        out[:, :, k] = np.clip(a64[:, lo:hi] @ b64[:, lo:hi].T, 0.0, 1.0)
    return out


# Per-part distance scales: ``1 - similarity`` is divided by the distance below which only 5% of
# strangers fall, measured on the standard scenarios built from UTKFace val faces (pairs of
# observations 0.5-5 s apart; tests/bench/tune_tracker.py). A distance of 1 then means "as alike
# as the closest 5% of strangers" for every part, and parts can be averaged. The hair band is a
# weak cue (most hair is dark), hence its lower weight.
SCALES = np.array([0.07, 0.02, 0.32, 0.34])
WEIGHTS = np.array([0.5, 1.0, 1.0, 1.0])
MIN_WEIGHT = 2.0
"""Least weight of the parts seen in both descriptors for a distance to be given at all (the
hair band alone, or the torso alone, says too little)."""
FACE_METRIC = Metric(SCALES, WEIGHTS, MIN_WEIGHT)


def distance_matrix(
    a_values: F32, a_valid: B, b_values: F32, b_valid: B, metric: Metric | None = None
) -> F64:
    """Appearance distance of every ``a`` (T, DIM) with every ``b`` (N, DIM): the weighted mean
    over the parts valid in both of ``(1 - similarity) / scales``; 0 for identical, about 1 for
    the closest 5% of strangers. NaN where the parts in common weigh less than the metric's
    ``min_weight``. ``metric`` defaults to :data:`FACE_METRIC`."""
    m = metric or FACE_METRIC
    both = a_valid[:, None, :] & b_valid[None, :, :]  # (T, N, P)
    wsum = (both * m.weights).sum(axis=2)
    if len(a_values) == 0 or len(b_values) == 0:
        return np.full((len(a_values), len(b_values)), np.nan)
    dist = ((1.0 - part_similarity(a_values, b_values)) / m.scales * both * m.weights).sum(axis=2)
    return np.where(wsum >= m.min_weight - 1e-9, dist / np.maximum(wsum, 1e-9), np.nan)


def blend(old: F32, old_valid: B, new: F32, new_valid: B, rate: float) -> tuple[F32, B]:
    """A running average of one person's descriptor: each part seen in ``new`` moves ``rate`` of
    the way towards it (or is taken as it is when the part was never seen), then back to unit
    length. Returns the new descriptor and its valid parts."""
    out = old.copy()
    for k in np.flatnonzero(new_valid):
        lo, hi = int(OFFSETS[k]), int(OFFSETS[k + 1])
        if old_valid[k]:
            part = (1.0 - rate) * old[lo:hi] + rate * new[lo:hi]
            norm = float(np.linalg.norm(part))
            out[lo:hi] = part / norm if norm > 1e-9 else new[lo:hi]
        else:
            out[lo:hi] = new[lo:hi]
    return out, old_valid | new_valid

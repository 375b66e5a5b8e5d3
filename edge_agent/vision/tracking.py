"""Following faces from frame to frame: a constant-velocity Kalman filter per track and optimal
(Hungarian) assignment, associating high-score detections first and low-score ones second (the
ByteTrack idea: a face that blurs or turns keeps its track through a weak detection instead of
losing it).

Everything runs in stream time (seconds), not frames: the Kalman filter integrates over the real
interval between detections (so detecting every n-th frame, a dropped frame or a variable frame
rate change nothing), and a track survives an absence up to ``max_absence_seconds`` and is retired
after it. A reappearance after a gap is matched by the motion model's prediction and its growing
uncertainty, capped at ``reid_max_distance`` face heights.

Appearance (optional: ``update`` takes per-detection descriptors from
:mod:`edge_agent.vision.appearance`) covers what motion cannot. Each track keeps a running average of
its descriptor from clean, confident observations. A track that was lost (not seen at the
previous detector run) may take a detection by overlap or motion only if they do not look
clearly different (``appearance_veto_distance``): two people who swapped places while hidden
keep their own ids. And when a new track is about to become a person, it is first compared with
the confirmed tracks lost within the absence window: if it looks like one of them
(``appearance_max_distance``), could have walked from where that one was last seen in the time
(``reid_max_speed``) and has about the same face size, it is that person coming back: the lost
track takes over its position and keeps its id, first sighting and counting state, and the new
track is dropped as never confirmed.

Per-track state is a fixed handful of numbers and one small descriptor (no history), tracks are
removed when they end and their number is capped, so memory stays flat on a 24/7 stream.
"""

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge_agent.vision.appearance import (
    DIM,
    MIN_WEIGHT,
    PARTS,
    WEIGHTS,
    Descriptors,
    blend,
    distance_matrix,
)
from edge_agent.vision.detection import Detections
from edge_agent.vision.settings import TrackerSettings

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Motion model noise per axis (cx, cy, w, h), in units of the face height h so one setting fits
# near and far faces. Random-walk densities per second: position (0.3 h)^2, velocity (1 h/s)^2
# (people start, stop and turn); size changes slowly. Measurement noise: YuNet boxes jitter by a
# few % of h. A new track's velocity is unknown: walking across the picture at 1.4 m/s is about
# 6 face heights per second.
_Q_POS = np.square([0.3, 0.3, 0.1, 0.1])
_Q_VEL = np.square([1.0, 1.0, 0.3, 0.3])
_MEAS = np.array([0.05, 0.05, 0.08, 0.08])
_INIT_VEL = np.array([5.0, 5.0, 0.5, 0.5])
_CHI2_2D_99 = 9.21  # 99% gate of a 2-D Mahalanobis distance
_REID_SIZE_RATIO = 2.0
_NO_MATCH = 1e6
# Appearance: how far each clean observation moves a track's descriptor (about the last 4
# observations count), the face size change allowed when a lost person comes back (perspective
# over a few seconds), and the slack of the walking-speed gate in face heights.
_APPEARANCE_RATE = 0.25
_RETURN_SIZE_RATIO = 1.6
_RETURN_SLACK = 1.0
# A track last seen touching the frame border and moving out through it faster than this (face
# heights per second; a face sliding out of the picture still moves at about half its speed)
# has left the picture.
_EXIT_SPEED = 0.5


def xyxy_to_cxcywh(boxes: F32) -> F64:
    b = boxes.astype(np.float64)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] + b[:, 2]) / 2
    out[:, 1] = (b[:, 1] + b[:, 3]) / 2
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    return out


def cxcywh_to_xyxy(state: F64) -> F32:
    cx, cy = state[..., 0], state[..., 1]
    w, h = np.maximum(state[..., 2], 1.0), np.maximum(state[..., 3], 1.0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).astype(np.float32)


def iou_matrix(a: F32, b: F32) -> F64:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ix1 = np.maximum(a64[:, None, 0], b64[None, :, 0])
    iy1 = np.maximum(a64[:, None, 1], b64[None, :, 1])
    ix2 = np.minimum(a64[:, None, 2], b64[None, :, 2])
    iy2 = np.minimum(a64[:, None, 3], b64[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a64[:, 2] - a64[:, 0]) * (a64[:, 3] - a64[:, 1])
    area_b = (b64[:, 2] - b64[:, 0]) * (b64[:, 3] - b64[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class _Track:
    """One followed face: a constant-velocity Kalman filter on ``cx, cy, w, h`` (px, px/s) at
    time ``t``, and a few scalars. Nothing grows with the track's age.

    Process and measurement noise are diagonal and every axis moves on its own, so the 8x8
    covariance is four independent 2x2 blocks; they are kept as the vectors ``p_pp`` (position
    variance), ``p_pv`` (covariance) and ``p_vv`` (velocity variance), one entry per axis, which
    makes predict and update a handful of element-wise operations.
    """

    __slots__ = (
        "app",
        "app_valid",
        "confirmed",
        "edge",
        "first_box",
        "first_seen",
        "hits",
        "id",
        "last_box",
        "last_seen",
        "p_pp",
        "p_pv",
        "p_vv",
        "pos",
        "t",
        "vel",
    )

    def __init__(self, track_id: int, box: F32, t: float) -> None:
        self.pos = _cxcywh(box)
        h = max(float(self.pos[3]), 1.0)
        self.id = track_id
        self.vel = np.zeros(4)
        self.p_pp = np.square(2 * _MEAS * h)
        self.p_pv = np.zeros(4)
        self.p_vv = np.square(_INIT_VEL * h)
        self.t = t
        self.first_seen = t
        self.last_seen = t
        self.hits = 1
        self.confirmed = False
        self.first_box = box.copy()
        self.last_box = box.copy()
        self.app = np.zeros(DIM, np.float32)
        self.app_valid = np.zeros(len(PARTS), bool)
        self.edge = np.zeros(2, np.float32)

    @property
    def height(self) -> float:
        return max(float(self.pos[3]), 1.0)

    def predict(self, t: float) -> None:
        dt = t - self.t
        if dt <= 0:
            return
        hh = self.height**2
        self.pos = self.pos + dt * self.vel
        self.p_pp = self.p_pp + dt * (2 * self.p_pv + dt * self.p_vv) + _Q_POS * (hh * dt)
        self.p_pv = self.p_pv + dt * self.p_vv
        self.p_vv = self.p_vv + _Q_VEL * (hh * dt)
        self.t = t

    def meas_var(self) -> F64:
        return np.square(_MEAS * self.height)

    def update(self, box: F32, t: float) -> None:
        innovation = _cxcywh(box) - self.pos
        s = self.p_pp + self.meas_var()
        k_p, k_v = self.p_pp / s, self.p_pv / s
        self.pos = self.pos + k_p * innovation
        self.vel = self.vel + k_v * innovation
        self.p_vv = self.p_vv - k_v * self.p_pv
        self.p_pp = (1 - k_p) * self.p_pp
        self.p_pv = (1 - k_p) * self.p_pv
        self.last_seen = t
        self.last_box = box.copy()
        self.hits += 1

    def box(self) -> F32:
        return cxcywh_to_xyxy(self.pos)

    def observe_appearance(self, values: F32, valid: npt.NDArray[np.bool_]) -> None:
        if valid.any():
            self.app, self.app_valid = blend(
                self.app, self.app_valid, values, valid, _APPEARANCE_RATE
            )

    @property
    def appearance_known(self) -> bool:
        return bool(WEIGHTS[self.app_valid].sum() >= MIN_WEIGHT - 1e-9)

    def walked_out(self) -> bool:
        """Last seen at the frame border, moving out through it."""
        return bool(self.edge.any()) and float(self.vel[:2] @ self.edge) > _EXIT_SPEED * self.height

    def take_over(self, new: "_Track") -> None:
        """This (lost) track is the person ``new`` has been following since they came back:
        continue from ``new``'s motion state and sightings, keep id and first sighting."""
        self.pos, self.vel = new.pos.copy(), new.vel.copy()
        self.p_pp, self.p_pv, self.p_vv = new.p_pp.copy(), new.p_pv.copy(), new.p_vv.copy()
        self.t = new.t
        self.last_seen = new.last_seen
        self.last_box = new.last_box.copy()
        self.hits += new.hits
        self.edge = new.edge.copy()
        self.observe_appearance(new.app, new.app_valid)


def _cxcywh(box: F32) -> F64:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def _reid_cost(tracks: list["_Track"], boxes: F32, max_distance: float) -> F64:
    """Cost of resuming each track with each detection by the motion model alone:
    ``d^2 / gate`` (squared Mahalanobis distance of the centres over its 99% gate), or no match
    outside that gate, beyond ``max_distance`` face heights, or at an implausible size change."""
    pos = np.stack([tr.pos for tr in tracks])  # (T, 4)
    var = np.stack([tr.p_pp[:2] + tr.meas_var()[:2] for tr in tracks])  # (T, 2)
    heights = np.maximum(pos[:, 3], 1.0)
    det = xyxy_to_cxcywh(boxes)  # (D, 4)
    diff = det[None, :, :2] - pos[:, None, :2]  # (T, D, 2)
    d2 = (diff**2 / var[:, None, :]).sum(axis=2)
    dist = np.hypot(diff[..., 0], diff[..., 1])
    ratio = det[None, :, 3] / heights[:, None]
    ok = (
        (d2 <= _CHI2_2D_99)
        & (dist <= max_distance * heights[:, None])
        & (ratio <= _REID_SIZE_RATIO)
        & (ratio >= 1 / _REID_SIZE_RATIO)
    )
    return np.where(ok, d2 / _CHI2_2D_99, _NO_MATCH)


def _appearance_distance(tracks: list["_Track"], appearance: Descriptors | None) -> F64 | None:
    """Appearance distance of every track with every detection (NaN where either has too
    little seen), or None without descriptors."""
    if appearance is None or not tracks:
        return None
    return distance_matrix(
        np.stack([tr.app for tr in tracks]),
        np.stack([tr.app_valid for tr in tracks]),
        appearance.values,
        appearance.valid,
    )


def _centre(box: F32) -> tuple[float, float]:
    return (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)


def _box_height(box: F32) -> float:
    return max(float(box[3] - box[1]), 1.0)


@dataclass(frozen=True)
class MatchedTracks:
    """Tracks that took a detection in this update: parallel arrays."""

    track_ids: npt.NDArray[np.int64]
    det_index: npt.NDArray[np.intp]
    confirmed: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        if len(self.det_index) != n or len(self.confirmed) != n:
            raise ValueError("track_ids, det_index and confirmed must have the same length")

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> "MatchedTracks":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.intp), np.zeros(0, bool))


@dataclass(frozen=True)
class EndedTrack:
    """A track that is over. ``confirmed`` tracks are people; the others were false detections."""

    track_id: int
    confirmed: bool
    first_seen: float
    last_seen: float
    hits: int
    first_box: F32
    last_box: F32


@dataclass(frozen=True)
class TrackerStep:
    matched: MatchedTracks
    ended: tuple[EndedTrack, ...]


@dataclass(frozen=True)
class TrackSnapshot:
    """Every live track's predicted box at one instant, for drawing and inspection."""

    track_ids: npt.NDArray[np.int64]
    boxes: F32
    confirmed: npt.NDArray[np.bool_]
    seen_now: npt.NDArray[np.bool_]


class Tracker(Protocol):
    """What the pipeline needs from a multi-face tracker (:class:`ByteTracker`; the evaluation
    plugs a seed-style centroid tracker in here to compare against)."""

    @property
    def wants_appearance(self) -> bool:
        """Whether :meth:`update` uses appearance descriptors (the caller computes them only
        then)."""
        ...

    def update(
        self, detections: Detections, t: float, appearance: Descriptors | None = None
    ) -> TrackerStep:
        """Advance to ``t`` (seconds) and take the detections of a frame run through the
        detector, with their appearance descriptors if :attr:`wants_appearance`."""
        ...

    def tick(self, t: float) -> tuple[EndedTrack, ...]:
        """Advance to ``t`` on a frame the detector skipped."""
        ...

    def finish(self) -> tuple[EndedTrack, ...]:
        """End every track (end of stream)."""
        ...

    def snapshot(self, t: float | None = None) -> TrackSnapshot:
        """Every live track's box at ``t``, without changing state."""
        ...

    def configure(self, settings: TrackerSettings) -> None:
        """Take new thresholds and absence window (remote configuration), keeping live tracks."""
        ...

    def __len__(self) -> int: ...


class ByteTracker:
    """Multi-face tracker. ``update`` on frames that were run through the detector, ``tick`` on
    the frames in between, ``finish`` at the end of the stream."""

    def __init__(
        self,
        *,
        max_absence_seconds: float = 5.0,
        high_score: float = 0.7,
        low_score: float = 0.5,
        match_iou: float = 0.25,
        low_match_iou: float = 0.5,
        reid_max_distance: float = 4.0,
        min_hits: int = 3,
        confirm_within_seconds: float = 1.0,
        max_tracks: int = 256,
        appearance_reid: bool = True,
        appearance_max_distance: float = 1.0,
        appearance_veto_distance: float = 2.5,
        reid_max_speed: float = 6.0,
        track_ids: Iterator[int] | None = None,
    ) -> None:
        if not max_absence_seconds > 0:
            raise ValueError(f"max_absence_seconds must be > 0, got {max_absence_seconds}")
        if not 0 <= low_score <= high_score <= 1:
            raise ValueError(
                f"need 0 <= low_score <= high_score <= 1, got {low_score} and {high_score}"
            )
        for name, value in (("match_iou", match_iou), ("low_match_iou", low_match_iou)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be within (0, 1], got {value}")
        if reid_max_distance < 0:
            raise ValueError(f"reid_max_distance must be >= 0, got {reid_max_distance}")
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        if not confirm_within_seconds > 0:
            raise ValueError(f"confirm_within_seconds must be > 0, got {confirm_within_seconds}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        for name, value in (
            ("appearance_max_distance", appearance_max_distance),
            ("appearance_veto_distance", appearance_veto_distance),
            ("reid_max_speed", reid_max_speed),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.max_absence = max_absence_seconds
        self.high_score = high_score
        self.low_score = low_score
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.reid_max_distance = reid_max_distance
        self.min_hits = min_hits
        self.confirm_within = confirm_within_seconds
        self.max_tracks = max_tracks
        self.appearance_reid = appearance_reid
        self.appearance_max_distance = appearance_max_distance
        self.appearance_veto_distance = appearance_veto_distance
        self.reid_max_speed = reid_max_speed
        self._ids = track_ids if track_ids is not None else itertools.count(1)
        self._tracks: list[_Track] = []
        self._now: float | None = None
        self._last_update: float | None = None

    @classmethod
    def from_settings(
        cls, settings: TrackerSettings, track_ids: Iterator[int] | None = None
    ) -> "ByteTracker":
        return cls(
            max_absence_seconds=settings.max_absence_seconds,
            high_score=settings.high_score,
            low_score=settings.low_score,
            match_iou=settings.match_iou,
            low_match_iou=settings.low_match_iou,
            reid_max_distance=settings.reid_max_distance,
            min_hits=settings.min_hits,
            confirm_within_seconds=settings.confirm_within_seconds,
            max_tracks=settings.max_tracks,
            appearance_reid=settings.appearance_reid,
            appearance_max_distance=settings.appearance_max_distance,
            appearance_veto_distance=settings.appearance_veto_distance,
            reid_max_speed=settings.reid_max_speed,
            track_ids=track_ids,
        )

    def __len__(self) -> int:
        return len(self._tracks)

    def configure(self, settings: TrackerSettings) -> None:
        """Take new thresholds between two frames (remote configuration); live tracks keep
        their state and are judged by the new values from the next frame on."""
        fresh = ByteTracker.from_settings(settings)  # the constructor's checks, nothing else
        self.max_absence = fresh.max_absence
        self.high_score = fresh.high_score
        self.low_score = fresh.low_score
        self.match_iou = fresh.match_iou
        self.low_match_iou = fresh.low_match_iou
        self.reid_max_distance = fresh.reid_max_distance
        self.min_hits = fresh.min_hits
        self.confirm_within = fresh.confirm_within
        self.max_tracks = fresh.max_tracks
        self.appearance_reid = fresh.appearance_reid
        self.appearance_max_distance = fresh.appearance_max_distance
        self.appearance_veto_distance = fresh.appearance_veto_distance
        self.reid_max_speed = fresh.reid_max_speed

    @property
    def wants_appearance(self) -> bool:
        return self.appearance_reid

    # -- time ------------------------------------------------------------------------------------

    def _advance(self, t: float) -> float:
        if self._now is not None and t < self._now:
            # A live clock stepped back (NTP): hold time still rather than run the filter backwards.
            log.debug("stream time went back by %.3f s; holding", self._now - t)
            t = self._now
        self._now = t
        return t

    def _retire(self, t: float) -> list[EndedTrack]:
        ended: list[_Track] = []
        kept: list[_Track] = []
        for track in self._tracks:
            if track.confirmed:
                over = t - track.last_seen > self.max_absence
            else:
                over = t - track.first_seen > self.confirm_within
                if over and track.hits >= self.min_hits:
                    # It waited to be seen well enough to tell whether it is someone coming
                    # back (see _returns); it never was: a new person.
                    track.confirmed, over = True, False
            (ended if over else kept).append(track)
        self._tracks = kept
        return [self._ended(track) for track in ended]

    @staticmethod
    def _ended(track: _Track) -> EndedTrack:
        return EndedTrack(
            track_id=track.id,
            confirmed=track.confirmed,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            hits=track.hits,
            first_box=track.first_box,
            last_box=track.last_box,
        )

    def tick(self, t: float) -> tuple[EndedTrack, ...]:
        """Advance to time ``t`` on a frame that was not run through the detector."""
        return tuple(self._retire(self._advance(t)))

    # -- association ----------------------------------------------------------------------------

    def update(
        self, detections: Detections, t: float, appearance: Descriptors | None = None
    ) -> TrackerStep:
        """Advance to ``t`` and take this frame's detections (and their descriptors, if any).

        1. high-score detections to tracks by overlap with their predicted box (1 - IoU):
           first to the tracks seen at the previous detector run, then to the others (lost
           ones: not if they look clearly different);
        2. high-score detections left over to tracks left over by the motion model alone (a
           face back after a gap, or moving further between detector runs than its size; again
           not if they look clearly different);
        3. low-score detections to tracks seen at the previous detector run, by clear overlap;
        4. high-score detections still left over start new (tentative) tracks;
        5. a tentative track about to be confirmed that looks like a person lost within the
           absence window, and could have walked here since, is that person back.
        """
        if appearance is not None and len(appearance) != len(detections):
            raise ValueError(f"{len(appearance)} descriptors for {len(detections)} detections")
        if not self.appearance_reid:
            appearance = None
        t = self._advance(t)
        ended = self._retire(t)
        tracks = self._tracks
        for track in tracks:
            track.predict(t)
        pred = (
            np.stack([track.box() for track in tracks]) if tracks else np.zeros((0, 4), np.float32)
        )
        scores, boxes = detections.scores, detections.boxes
        high = [int(d) for d in np.flatnonzero(scores >= self.high_score)]
        low = [
            int(d) for d in np.flatnonzero((scores >= self.low_score) & (scores < self.high_score))
        ]
        looks = _appearance_distance(tracks, appearance)

        matches: list[tuple[int, int]] = []  # (track index, detection index)
        free = list(range(len(tracks)))

        def take(pairs: list[tuple[int, int]], rows: list[int], cols: list[int]) -> None:
            for r, c in pairs:
                matches.append((rows[r], cols[c]))
            used_rows = {rows[r] for r, _ in pairs}
            used_cols = {cols[c] for _, c in pairs}
            free[:] = [i for i in free if i not in used_rows]
            for pool in (high, low):
                pool[:] = [d for d in pool if d not in used_cols]

        def veto(cost: F64, rows: list[int], cols: list[int]) -> F64:
            # NaN (too little seen to tell) never vetoes.
            if looks is None:
                return cost
            different = looks[np.ix_(rows, cols)] > self.appearance_veto_distance
            return np.where(different, _NO_MATCH, cost)

        # Tracks seen at the previous detector run choose first: a track lost for a while
        # coasts on its last velocity, and its box drifting over someone else's face must not
        # take that face from the track that has been following it.
        recent_first = [i for i in free if tracks[i].last_seen == self._last_update]
        # With appearance, someone who walked out of the picture comes back only by looking
        # like themselves (step 5): by position alone, whoever walks in where they left would
        # take their id.
        gone = (
            {i for i in free if i not in recent_first and tracks[i].walked_out()}
            if appearance is not None
            else set()
        )
        for group, check in (
            (recent_first, False),
            ([i for i in free if i not in recent_first and i not in gone], True),
        ):
            rows = [i for i in group if i in free]
            if high and rows:
                cols = list(high)
                iou = iou_matrix(pred[rows], boxes[cols])
                cost = np.where(iou >= self.match_iou, 1.0 - iou, _NO_MATCH)
                take(_assign(veto(cost, rows, cols) if check else cost), rows, cols)
        if high and free and self.reid_max_distance > 0:
            rows, cols = [i for i in free if i not in gone], list(high)
            if rows:
                cost = _reid_cost([tracks[i] for i in rows], boxes[cols], self.reid_max_distance)
                take(_assign(veto(cost, rows, cols)), rows, cols)
        # Low-score detections are too unreliable to resume a lost track or start one.
        recent = [i for i in free if tracks[i].last_seen == self._last_update]
        if low and recent:
            iou = iou_matrix(pred[recent], boxes[low])
            take(
                _assign(np.where(iou >= self.low_match_iou, 1.0 - iou, _NO_MATCH)),
                recent,
                list(low),
            )

        confirming: list[_Track] = []
        for ti, di in matches:
            track = tracks[ti]
            track.update(boxes[di], t)
            if not track.confirmed and track.hits >= self.min_hits:
                confirming.append(track)
        new_tracks = [_Track(next(self._ids), boxes[d], t) for d in high]
        if self.min_hits <= 1:
            confirming += new_tracks
        pairs = [(tracks[ti], di) for ti, di in matches] + list(zip(new_tracks, high, strict=True))
        if appearance is not None:
            for track, di in pairs:
                track.edge = appearance.edge[di].copy()
                # Only clean looks count: a confident detection of a face wholly inside the
                # picture (parts hidden by others are already marked invalid).
                if scores[di] >= self.high_score and not appearance.clipped[di]:
                    track.observe_appearance(appearance.values[di], appearance.valid[di])
        self._tracks = tracks + new_tracks

        # id(new track) -> the lost track it turned out to be; and tracks that wait
        returned, waiting = self._returns(confirming, t) if appearance is not None else ({}, [])
        for track in confirming:
            if id(track) not in returned and id(track) not in waiting:
                track.confirmed = True
        if returned:
            for tentative in [tr for tr in self._tracks if id(tr) in returned]:
                ended.append(self._ended(tentative))  # unconfirmed: never a person
            self._tracks = [tr for tr in self._tracks if id(tr) not in returned]
            pairs = [(returned.get(id(tr), tr), di) for tr, di in pairs]
        ended += self._enforce_cap(t)
        self._last_update = t

        alive = {id(tr) for tr in self._tracks}
        pairs = [(tr, di) for tr, di in pairs if id(tr) in alive]
        matched = MatchedTracks(
            np.array([tr.id for tr, _ in pairs], np.int64),
            np.array([di for _, di in pairs], np.intp),
            np.array([tr.confirmed for tr, _ in pairs], bool),
        )
        return TrackerStep(matched=matched, ended=tuple(ended))

    def _returns(self, confirming: list[_Track], t: float) -> tuple[dict[int, _Track], set[int]]:
        """Which of the tracks about to be confirmed are people lost earlier coming back:
        ``{id(new track): lost track}``, the lost tracks already updated; and which must wait,
        ``{id(new track)}``: someone lost could be back here, but the new track has not been
        seen well enough yet to tell (a face still partly outside the picture, or behind
        someone). A waiting track is confirmed at the latest when ``confirm_within_seconds``
        is over (:meth:`_retire`)."""
        lost = [tr for tr in self._tracks if tr.confirmed and tr.last_seen < t]
        lost = [tr for tr in lost if tr.appearance_known]
        if not confirming or not lost:
            return {}, set()
        cost = distance_matrix(
            np.stack([tr.app for tr in lost]),
            np.stack([tr.app_valid for tr in lost]),
            np.stack([tr.app for tr in confirming]),
            np.stack([tr.app_valid for tr in confirming]),
        )
        plausible = np.zeros(cost.shape, bool)
        for i, old in enumerate(lost):
            ox, oy = _centre(old.last_box)
            oh = _box_height(old.last_box)
            for j, new in enumerate(confirming):
                nx, ny = _centre(new.first_box)
                gap = new.first_seen - old.last_seen
                reach = (self.reid_max_speed * max(gap, 0.0) + _RETURN_SLACK) * oh
                ratio = _box_height(new.first_box) / oh
                plausible[i, j] = (
                    gap > 0  # both seen at once: two people
                    and np.hypot(nx - ox, ny - oy) <= reach
                    and 1 / _RETURN_SIZE_RATIO <= ratio <= _RETURN_SIZE_RATIO
                )
        cost = np.where(plausible & (cost <= self.appearance_max_distance), cost, _NO_MATCH)
        returned: dict[int, _Track] = {}
        taken: set[int] = set()
        for i, j in _assign(cost):
            old, new = lost[i], confirming[j]
            log.debug(
                "track %d back after %.1f s as %d (appearance distance %.2f)",
                old.id,
                new.first_seen - old.last_seen,
                new.id,
                cost[i, j],
            )
            old.take_over(new)
            returned[id(new)] = old
            taken.add(i)
        waiting = {
            id(new)
            for j, new in enumerate(confirming)
            if id(new) not in returned
            and not new.appearance_known
            and any(plausible[i, j] for i in range(len(lost)) if i not in taken)
        }
        return returned, waiting

    def _enforce_cap(self, t: float) -> list[EndedTrack]:
        if len(self._tracks) <= self.max_tracks:
            return []
        # Drop the tracks unseen the longest; ties go against unconfirmed ones.
        order = sorted(self._tracks, key=lambda tr: (tr.last_seen, tr.confirmed))
        excess = len(self._tracks) - self.max_tracks
        gone, self._tracks = order[:excess], order[excess:]
        log.warning("more than %d live tracks; ended %d early", self.max_tracks, excess)
        return [self._ended(track) for track in gone]

    def finish(self) -> tuple[EndedTrack, ...]:
        """End every track (end of stream)."""
        ended = tuple(self._ended(track) for track in self._tracks)
        self._tracks = []
        return ended

    def snapshot(self, t: float | None = None) -> TrackSnapshot:
        """Live tracks, their boxes predicted to ``t`` (default: now) without changing state."""
        t = self._now if t is None else t
        boxes = []
        for track in self._tracks:
            dt = max(0.0, (t or track.t) - track.t)
            boxes.append(cxcywh_to_xyxy(track.pos + dt * track.vel))
        return TrackSnapshot(
            track_ids=np.array([tr.id for tr in self._tracks], np.int64),
            boxes=np.stack(boxes) if boxes else np.zeros((0, 4), np.float32),
            confirmed=np.array([tr.confirmed for tr in self._tracks], bool),
            seen_now=np.array([tr.last_seen == self._now for tr in self._tracks], bool),
        )


def _assign(cost: F64) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment, keeping only real (gated) pairs."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]

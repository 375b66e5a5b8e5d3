"""One followed box: a constant-velocity Kalman filter in stream time, and the few scalars a
track keeps (hits, first and last sight, border contact, a running appearance descriptor)."""

import numpy as np
import numpy.typing as npt

from edge_agent.vision.appearance import (
    DIM,
    MIN_WEIGHT,
    PARTS,
    WEIGHTS,
    blend,
)
from edge_agent.vision.tracking.geometry import (
    F32,
    F64,
    box_cxcywh,
    cxcywh_to_xyxy,
)

# Motion model noise per axis (cx, cy, w, h), in units of the face height h so one setting fits
# near and far faces. Random-walk densities per second: position (0.3 h)^2, velocity (1 h/s)^2
# (people start, stop and turn); size changes slowly. Measurement noise: YuNet boxes jitter by a
# few % of h. A new track's velocity is unknown: walking across the picture at 1.4 m/s is about
# 6 face heights per second.
_Q_POS = np.square([0.3, 0.3, 0.1, 0.1])
_Q_VEL = np.square([1.0, 1.0, 0.3, 0.3])
_MEAS = np.array([0.05, 0.05, 0.08, 0.08])
_INIT_VEL = np.array([5.0, 5.0, 0.5, 0.5])
# How far each clean observation moves a track's descriptor (about the last 4 observations
# count).
_APPEARANCE_RATE = 0.25
# A track last seen touching the frame border and moving out through it faster than this (face
# heights per second; a face sliding out of the picture still moves at about half its speed)
# has left the picture.
_EXIT_SPEED = 0.5


class KalmanTrack:
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
        self.pos = box_cxcywh(box)
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
        innovation = box_cxcywh(box) - self.pos
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

    def take_over(self, new: "KalmanTrack") -> None:
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

"""Association costs between tracks and detections: motion (a gated Mahalanobis distance),
appearance, and the optimal one-to-one assignment over a cost matrix."""

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge_agent.vision.appearance import (
    Descriptors,
    distance_matrix,
)
from edge_agent.vision.tracking.geometry import (
    F32,
    F64,
    xyxy_to_cxcywh,
)
from edge_agent.vision.tracking.kalman import KalmanTrack

CHI2_2D_99 = 9.21  # 99% gate of a 2-D Mahalanobis distance
REID_SIZE_RATIO = 2.0
NO_MATCH = 1e6


def reid_cost(tracks: list["KalmanTrack"], boxes: F32, max_distance: float) -> F64:
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
        (d2 <= CHI2_2D_99)
        & (dist <= max_distance * heights[:, None])
        & (ratio <= REID_SIZE_RATIO)
        & (ratio >= 1 / REID_SIZE_RATIO)
    )
    return np.where(ok, d2 / CHI2_2D_99, NO_MATCH)


def appearance_distance(tracks: list["KalmanTrack"], appearance: Descriptors | None) -> F64 | None:
    """Appearance distance of every track with every detection (NaN where either has too
    little seen), or None without descriptors."""
    if appearance is None or not tracks:
        return None
    return distance_matrix(
        np.stack([tr.app for tr in tracks]),
        np.stack([tr.app_valid for tr in tracks]),
        appearance.values,
        appearance.valid,
        appearance.metric,
    )


def assign(cost: F64) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment, keeping only real (gated) pairs."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < NO_MATCH]

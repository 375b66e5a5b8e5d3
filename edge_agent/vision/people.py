"""Person mode's geometry: which face belongs to which body, the point of a body that crosses
the counting line, and where the head of a body box is.

Pure functions on boxes (``x1, y1, x2, y2`` frame pixels); the pipeline calls them.
"""

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge_agent.vision.settings import CountPoint

F32 = npt.NDArray[np.float32]

# Head height as a share of a standing body's box (about 1/7 of the height).
HEAD_SHARE = 0.14


def assign_faces(bodies: F32, faces: F32, region: float) -> list[int | None]:
    """For every body, the index of its face in ``faces``, or None.

    A face may belong to a body when its centre lies inside the body box's top ``region`` share
    (the head and shoulders). Where faces and bodies overlap (people walking side by side, one
    behind the other) each face goes to one body and each body takes one face, the pairing
    that puts faces closest to where a head is expected (top centre of the body, in body
    widths) - a Hungarian assignment, not first come.
    """
    out: list[int | None] = [None] * len(bodies)
    if len(bodies) == 0 or len(faces) == 0:
        return out
    fx = (faces[:, 0] + faces[:, 2]) / 2
    fy = (faces[:, 1] + faces[:, 3]) / 2
    bw = np.maximum(bodies[:, 2] - bodies[:, 0], 1.0)
    bh = np.maximum(bodies[:, 3] - bodies[:, 1], 1.0)
    inside = (
        (fx[None, :] >= bodies[:, None, 0])
        & (fx[None, :] <= bodies[:, None, 2])
        & (fy[None, :] >= bodies[:, None, 1])
        & (fy[None, :] <= bodies[:, None, 1] + region * bh[:, None])
    )
    if not inside.any():
        return out
    head_x = (bodies[:, 0] + bodies[:, 2]) / 2
    head_y = bodies[:, 1] + HEAD_SHARE / 2 * bh
    cost = np.hypot(fx[None, :] - head_x[:, None], fy[None, :] - head_y[:, None]) / bw[:, None]
    big = 1e6
    cost = np.where(inside, cost, big)
    rows, cols = linear_sum_assignment(cost)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if cost[r, c] < big:
            out[r] = int(c)
    return out


def count_point(box: F32, point: CountPoint | None) -> tuple[float, float]:
    """The point of ``box`` the counting line watches: the centre (faces, or ``centre``) or the
    bottom centre (``foot``: where a walker is on the ground, which moves with them whatever
    their height in the picture)."""
    x = float(box[0] + box[2]) / 2
    if point is CountPoint.FOOT:
        return x, float(box[3])
    return x, float(box[1] + box[3]) / 2


def head_boxes(bodies: F32) -> F32:
    """Square boxes where the heads of ``bodies`` are expected (top centre)."""
    if len(bodies) == 0:
        return bodies
    h = np.maximum(bodies[:, 3] - bodies[:, 1], 1.0) * HEAD_SHARE
    cx = (bodies[:, 0] + bodies[:, 2]) / 2
    y1 = bodies[:, 1]
    return np.stack([cx - h / 2, y1, cx + h / 2, y1 + h], axis=1).astype(np.float32)

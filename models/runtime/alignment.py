"""5-point face alignment: the one function that turns a face in a frame into the aligned chip the
gender/age models expect.

Training imports :func:`align_face` too, so a model is trained on exactly the chips the edge
produces. Everything here is pure (arrays in, arrays out) and deterministic.
"""

import math

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

ALIGNMENT_TEMPLATE: F32 = np.array(
    [
        [0.3034, 0.2722],  # right eye (image left)
        [0.6870, 0.2900],  # left eye
        [0.4779, 0.5037],  # nose tip
        [0.3061, 0.6628],  # right mouth corner
        [0.6461, 0.6781],  # left mouth corner
    ],
    np.float32,
)
"""Where the 5 landmarks go, as fractions of the chip (dlib-style chips, see MODELS.md)."""

# Typical landmark positions as fractions of a detector's face box (x from the box's left, y from
# its top), for detectors that give no landmarks (the SSD). Measured on frontal YuNet detections
# of the shared photos and made left-right symmetric; only a rough stand-in.
BOX_LANDMARKS: F32 = np.array(
    [[0.30, 0.38], [0.70, 0.38], [0.50, 0.57], [0.33, 0.72], [0.67, 0.72]], np.float32
)

MAX_OVERSAMPLE = 4


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> F64:
    """The 2x3 similarity (rotation, uniform scale, translation; no reflection) that maps the
    points ``src`` onto ``dst`` with least squared error.

    Closed form rather than ``cv2.estimateAffinePartial2D``: that one runs RANSAC, which may
    ignore some of only five points and is not deterministic.
    """
    s = np.asarray(src, np.float64).reshape(-1, 2)
    d = np.asarray(dst, np.float64).reshape(-1, 2)
    if s.shape != d.shape or len(s) < 2:
        raise ValueError(f"need two equally long lists of >= 2 points, got {s.shape} and {d.shape}")
    s_mean, d_mean = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - s_mean, d - d_mean
    norm = float((sc**2).sum())
    if norm < 1e-12:
        raise ValueError("source points coincide; no transform is defined")
    # x' = a*x - b*y + tx ; y' = b*x + a*y + ty
    a = float((sc[:, 0] * dc[:, 0] + sc[:, 1] * dc[:, 1]).sum()) / norm
    b = float((sc[:, 0] * dc[:, 1] - sc[:, 1] * dc[:, 0]).sum()) / norm
    rot = np.array([[a, -b], [b, a]])
    t = d_mean - rot @ s_mean
    return np.hstack([rot, t[:, None]])


def landmarks_from_box(box: npt.ArrayLike) -> F32:
    """Approximate 5 landmarks for a face box ``x1, y1, x2, y2`` without detected ones."""
    x1, y1, x2, y2 = np.asarray(box, np.float32)
    return BOX_LANDMARKS * np.array([x2 - x1, y2 - y1], np.float32) + np.array([x1, y1], np.float32)


def align_face(
    image: U8,
    landmarks: npt.ArrayLike,
    size: int,
    *,
    template: F32 = ALIGNMENT_TEMPLATE,
) -> U8:
    """The ``size`` x ``size`` chip of the face whose 5 ``landmarks`` (image pixels) are given.

    When the face is larger than the chip, it is warped onto a chip up to 4x larger and shrunk
    with area interpolation (as MODELS.md recommends), which avoids aliasing; a face already
    smaller than the chip is warped directly, since oversampling would add nothing.
    Pixels outside the image repeat the border rather than turning black, so a face at the frame
    edge does not gain a hard artificial edge.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    points = np.asarray(landmarks, np.float32).reshape(5, 2)
    if not np.isfinite(points).all():
        raise ValueError("landmarks must be finite; use landmarks_from_box for boxes without them")
    matrix = similarity_transform(points, template * size)
    scale = math.hypot(matrix[0, 0], matrix[1, 0])  # chip pixels per image pixel
    over = 1 if scale >= 1.0 else min(MAX_OVERSAMPLE, math.ceil(1.0 / scale))
    if over == 1:
        return np.asarray(
            cv2.warpAffine(
                image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        )
    big = cv2.warpAffine(
        image,
        matrix * over,
        (size * over, size * over),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA))

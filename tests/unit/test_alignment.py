"""5-point alignment: landmarks land on the template, whatever the face's pose in the frame."""

import math

import numpy as np
import pytest

from models.runtime.alignment import (
    ALIGNMENT_TEMPLATE,
    align_face,
    landmarks_from_box,
    similarity_transform,
)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2])


def test_similarity_transform_recovers_rotation_scale_translation() -> None:
    angle, scale = math.radians(25), 2.5
    rot = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    src = ALIGNMENT_TEMPLATE.astype(np.float64) * 100
    dst = src @ rot.T + np.array([40.0, -7.0])
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(_apply(matrix, src), dst, atol=1e-9)


def test_similarity_transform_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError, match="source points coincide"):
        similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="need two equally long lists"):
        similarity_transform(np.ones((5, 2)), np.zeros((4, 2)))


def _dots_image(points: np.ndarray, size: tuple[int, int], radius: int) -> np.ndarray:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    for k, (x, y) in enumerate(points):
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = (50 * (k + 1), 255, 255 - 40 * k)
    return img


@pytest.mark.parametrize(
    ("angle_deg", "face_px", "offset"),
    [(0, 200, (100, 80)), (-30, 300, (50, 60)), (20, 40, (10, 10))],
    ids=["upright-large", "tilted-larger-than-chip-x4", "small-face"],
)
def test_landmarks_land_on_the_template(
    angle_deg: float, face_px: float, offset: tuple[float, float]
) -> None:
    angle = math.radians(angle_deg)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = (ALIGNMENT_TEMPLATE - 0.5) @ rot.T * face_px + 0.5 * face_px + np.array(offset)
    image = _dots_image(landmarks, (500, 450), radius=max(2, int(face_px * 0.03)))
    chip = align_face(image, landmarks, 64)
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    for k, (tx, ty) in enumerate(ALIGNMENT_TEMPLATE * 64):
        # The brightest pixel of each dot's colour sits where the template says (within 1.5 px).
        colour = np.array([50 * (k + 1), 255, 255 - 40 * k], np.float32)
        distance = np.abs(chip.astype(np.float32) - colour).sum(axis=2)
        ys, xs = np.nonzero(distance < 60)
        assert len(xs), f"landmark {k} missing from the chip"
        assert abs(xs.mean() - tx) < 1.5 and abs(ys.mean() - ty) < 1.5, k


def test_face_at_the_frame_edge_repeats_the_border() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    landmarks = ALIGNMENT_TEMPLATE * 80 - 30  # half the face is above/left of the frame
    chip = align_face(image, landmarks, 32)
    assert chip.min() == 200  # no black fill where the face leaves the frame


def test_align_face_rejects_missing_landmarks() -> None:
    with pytest.raises(ValueError, match="landmarks must be finite"):
        align_face(np.zeros((10, 10, 3), np.uint8), np.full((5, 2), np.nan), 32)


def test_landmarks_from_box_sit_inside_the_box_in_face_order() -> None:
    lm = landmarks_from_box([100, 200, 200, 300])
    assert (lm[:, 0] > 100).all() and (lm[:, 0] < 200).all()
    assert (lm[:, 1] > 200).all() and (lm[:, 1] < 300).all()
    assert lm[0, 0] < lm[1, 0] and lm[0, 1] < lm[2, 1] < lm[3, 1]

"""Face crops: padded, clipped (never wrapped around), scaled, JPEG."""

import cv2
import numpy as np
import pytest

from edge_agent.vision.crops import encode_jpeg, face_crop, padded_bounds


@pytest.mark.parametrize(
    ("box", "padding", "expected"),
    [
        ([100, 100, 200, 200], 0.25, (75, 75, 225, 225)),
        ([0, 0, 40, 40], 0.5, (0, 0, 60, 60)),  # top-left: clipped at 0, not negative
        ([-30, -30, 10, 10], 0.0, (0, 0, 10, 10)),
        ([600, 440, 640, 480], 0.5, (580, 420, 640, 480)),
        ([639.5, 10, 640, 11], 0.0, (639, 10, 640, 11)),  # sliver: at least one pixel
    ],
)
def test_padded_bounds(
    box: list[float], padding: float, expected: tuple[int, int, int, int]
) -> None:
    assert padded_bounds(box, padding, 640, 480) == expected


def _quadrants() -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:240, :320] = (255, 0, 0)
    frame[:240, 320:] = (0, 255, 0)
    frame[240:, :320] = (0, 0, 255)
    frame[240:, 320:] = (255, 255, 255)
    return frame


def test_crop_at_top_left_edge_contains_only_top_left_pixels() -> None:
    # The seed sliced frame[y1:y2, x1:x2] with negative x1/y1, which numpy reads from the far end.
    crop = face_crop(_quadrants(), [-20, -20, 60, 60], padding=0.5, size=64)
    assert crop.shape[:2] == (64, 64)
    assert (crop.reshape(-1, 3) == (255, 0, 0)).all()


def test_crop_keeps_aspect_and_fits_size() -> None:
    crop = face_crop(_quadrants(), [100, 100, 140, 200], padding=0.0, size=50)
    assert crop.shape[:2] == (50, 20)
    small = face_crop(_quadrants(), [100, 100, 110, 110], padding=0.0, size=64)
    assert small.shape[:2] == (64, 64)


def test_jpeg_round_trip() -> None:
    crop = face_crop(_quadrants(), [300, 200, 340, 280], padding=0.2, size=96)
    data = encode_jpeg(crop, 85)
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == crop.shape
    with pytest.raises(ValueError, match="quality must be within 1-100, got 0"):
        encode_jpeg(crop, 0)

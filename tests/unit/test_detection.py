"""Detections record, clipping to the frame, and parsing of the two detectors' raw outputs."""

import numpy as np
import pytest

from edge_agent.vision.detection import Detections, FakeDetector, downscale, parse_ssd, parse_yunet


def test_detections_validate_shapes_and_dtypes() -> None:
    with pytest.raises(ValueError, match=r"scores must have shape \(1,\), got \(2,\)"):
        Detections(
            np.zeros((1, 4), np.float32), np.zeros(2, np.float32), np.zeros((1, 5, 2), np.float32)
        )
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(3,\)"):
        Detections(
            np.zeros(3, np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )
    with pytest.raises(ValueError, match="boxes must be float32, got float64"):
        Detections(
            np.zeros((0, 4)),  # type: ignore[arg-type]
            np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32),
        )
    assert len(Detections.empty()) == 0


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([-20, -10, 30, 40], [0, 0, 30, 40]),  # top-left corner: clipped, never wrapped
        ([600, 440, 700, 520], [600, 440, 640, 480]),  # bottom-right corner
        ([10, 10, 50, 50], [10, 10, 50, 50]),  # inside: unchanged
    ],
)
def test_boxes_are_clipped_to_the_frame(box: list[float], expected: list[float]) -> None:
    det = Detections.from_boxes([box], [0.9]).clipped(640, 480)
    np.testing.assert_array_equal(det.boxes, np.array([expected], np.float32))


def test_boxes_entirely_outside_are_dropped() -> None:
    det = Detections.from_boxes(
        [[-50, -50, -10, -10], [700, 10, 800, 50], [5, 5, 20, 20]], [1, 1, 1]
    )
    assert det.clipped(640, 480).boxes.tolist() == [[5, 5, 20, 20]]


def test_parse_yunet_maps_back_to_frame_pixels() -> None:
    # One face found on a half-size frame: x, y, w, h, 5 landmarks, score.
    row = np.array([[10, 20, 30, 40, 15, 30, 30, 30, 22, 38, 16, 48, 29, 48, 0.93]], np.float32)
    det = parse_yunet(row, (0.5, 0.5), 640, 480)
    np.testing.assert_allclose(det.boxes, [[20, 40, 80, 120]])
    np.testing.assert_allclose(det.landmarks[0, 0], [30, 60])
    np.testing.assert_allclose(det.scores, [0.93])
    assert det.has_landmarks.tolist() == [True]
    assert len(parse_yunet(None, (0.5, 0.5), 640, 480)) == 0


def test_parse_ssd_drops_low_scores_before_their_garbage_coordinates() -> None:
    out = np.zeros((1, 1, 3, 7), np.float32)
    out[0, 0, 0] = [0, 1, 0.99, 0.1, 0.2, 0.3, 0.5]
    out[0, 0, 1] = [0, 1, 0.12, 4.1, 4.0, 4.8, 4.9]  # below threshold, coordinates out of range
    out[0, 0, 2] = [0, 1, 0.90, -0.1, 0.9, 0.2, 1.2]  # at the corner: clipped
    det = parse_ssd(out, 0.5, 100, 200)
    np.testing.assert_allclose(det.boxes, [[10, 40, 30, 100], [0, 180, 20, 200]], atol=1e-4)
    assert det.has_landmarks.tolist() == [False, False]


def test_fake_detector_replays_its_script_and_clips() -> None:
    fake = FakeDetector([Detections.from_boxes([[-5, 0, 10, 10]], [0.8])])
    frame = np.zeros((20, 20, 3), np.uint8)
    assert fake.detect(frame).boxes.tolist() == [[0, 0, 10, 10]]
    assert len(fake.detect(frame)) == 0
    assert fake.calls == 2 and fake.model.name == "fake"


@pytest.mark.parametrize(
    ("shape", "size"),
    [((480, 640), (320, 240)), ((720, 1280), (320, 180)), ((528, 720), (480, 352))],
)
def test_downscale_keeps_the_picture(shape: tuple[int, int], size: tuple[int, int]) -> None:
    # A smooth gradient shrinks to (nearly) the same gradient whichever path is taken.
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.dstack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)]).astype(np.uint8)
    small = downscale(image, size)
    assert small.shape == (size[1], size[0], 3)
    _, sx = np.mgrid[0 : size[1], 0 : size[0]]
    expected = (sx + 0.5) * w / size[0] * 255 / w
    assert np.abs(small[..., 0].astype(float) - expected).max() < 3

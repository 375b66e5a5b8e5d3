"""The body descriptor (person mode): regions, who hides whom, and that it tells two differently
dressed walkers apart while matching one walker with themselves; and the tracker's use of it."""

import numpy as np
import pytest

from edge_agent.vision.appearance import FACE_METRIC, PARTS, Descriptors, distance_matrix
from edge_agent.vision.body_appearance import (
    BODY_METRIC,
    body_regions,
    describe_bodies,
    in_front,
)
from edge_agent.vision.detection import Detections
from edge_agent.vision.tracking import ByteTracker

BGR = tuple[int, int, int]


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32)


def _walker(frame: np.ndarray, box: tuple[int, int, int, int], shirt: BGR, trousers: BGR) -> None:
    """Paint a crude person: dark hair, a shirt over the upper half, trousers below."""
    x1, y1, x2, y2 = box
    h = y2 - y1
    frame[y1 : y1 + h // 7, x1:x2] = (30, 30, 30)
    frame[y1 + h // 7 : y1 + h // 2, x1:x2] = shirt
    frame[y1 + h // 2 : y2, x1:x2] = trousers


def _frame() -> np.ndarray:
    return np.full((480, 640, 3), 160, np.uint8)  # grey pavement


RED, GREEN, BLUE = (30, 30, 200), (40, 180, 40), (160, 60, 20)


def test_regions_follow_the_body_box() -> None:
    (r,) = body_regions(_boxes((100, 100, 200, 400)))
    head, upper, lower = r
    np.testing.assert_allclose(head, (120, 100, 180, 145))
    np.testing.assert_allclose(upper, (120, 154, 180, 250))
    np.testing.assert_allclose(lower, (120, 256, 180, 364))


def test_the_walker_with_lower_feet_is_in_front() -> None:
    front = in_front(_boxes((0, 0, 10, 100), (5, 20, 15, 130)))
    assert front.tolist() == [[False, True], [False, False]]


def test_one_walker_matches_themselves_and_not_a_differently_dressed_one() -> None:
    a, b = _frame(), _frame()
    _walker(a, (100, 100, 160, 300), RED, BLUE)
    _walker(a, (400, 120, 460, 320), GREEN, BLUE)
    _walker(b, (130, 105, 190, 305), RED, BLUE)  # the red one a few steps on
    first = describe_bodies(a, _boxes((100, 100, 160, 300), (400, 120, 460, 320)))
    later = describe_bodies(b, _boxes((130, 105, 190, 305)))
    assert first.metric is BODY_METRIC
    # Flat paint has no grey pattern; the three colour regions are seen.
    assert first.valid[:, :3].all() and later.valid[:, :3].all()
    d = distance_matrix(first.values, first.valid, later.values, later.valid, BODY_METRIC)
    assert d[0, 0] < 0.5  # the same walker
    assert d[1, 0] > 2.5  # a stranger in another shirt: beyond the veto distance


def test_the_walker_behind_is_hidden_the_one_in_front_is_not() -> None:
    frame = _frame()
    behind, front = (200, 80, 260, 280), (230, 110, 290, 310)
    _walker(frame, behind, GREEN, BLUE)
    _walker(frame, front, RED, BLUE)
    looks = describe_bodies(frame, _boxes(behind, front))
    head, upper, lower = (PARTS.index(p) for p in ("hair", "face", "torso"))
    # The head behind shows above the front walker; the rest is half the front walker's.
    assert looks.valid[0, head] and not looks.valid[0, [upper, lower]].any()
    assert looks.valid[1, [head, upper, lower]].all()


def test_body_and_face_descriptors_compare_by_their_own_scales() -> None:
    frame = _frame()
    _walker(frame, (100, 100, 160, 300), RED, BLUE)
    _walker(frame, (300, 100, 360, 300), GREEN, BLUE)
    looks = describe_bodies(frame, _boxes((100, 100, 160, 300), (300, 100, 360, 300)))
    args = (looks.values[:1], looks.valid[:1], looks.values[1:], looks.valid[1:])
    assert distance_matrix(*args, BODY_METRIC)[0, 0] != distance_matrix(*args, FACE_METRIC)[0, 0]


def _looks(colour: int, n: int) -> Descriptors:
    """``n`` body descriptors that all look alike (``colour`` picks which of two looks)."""
    d = Descriptors.empty(n)
    values = d.values.copy()
    values[:, colour] = 1.0  # one hue bin of the head region...
    values[:, 28 + colour] = 1.0  # ...of the upper body...
    values[:, 56 + colour] = 1.0  # ...and of the lower body
    valid = np.zeros_like(d.valid)
    valid[:, :3] = True
    return Descriptors(values, valid, d.edge, d.clipped, BODY_METRIC)


def _detections(boxes: list[tuple[float, float, float, float]]) -> Detections:
    """Confident body boxes (bodies have no landmarks)."""
    n = len(boxes)
    return Detections(
        np.array(boxes, np.float32),
        np.full(n, 0.9, np.float32),
        np.full((n, 5, 2), np.nan, np.float32),
    )


def _two(
    boxes: list[tuple[float, float, float, float]], colours: list[int]
) -> tuple[Detections, Descriptors]:
    det = _detections(boxes)
    a, b = _looks(colours[0], 1), _looks(colours[1], 1)
    looks = Descriptors(
        np.concatenate([a.values, b.values]),
        np.concatenate([a.valid, b.valid]),
        np.concatenate([a.edge, b.edge]),
        np.concatenate([a.clipped, b.clipped]),
        BODY_METRIC,
    )
    return det, looks


@pytest.mark.parametrize(("weight", "kept"), [(0.0, False), (1.0, True)])
def test_appearance_weight_keeps_crossing_walkers_apart(weight: float, kept: bool) -> None:
    """Two standing walkers, then a frame where each one's box sits slightly closer to where the
    other was: by overlap alone their ids swap; weighted by appearance, each keeps their own."""
    tracker = ByteTracker(min_hits=1, appearance_weight=weight, high_score=0.5, low_score=0.3)
    still = [(100.0, 100.0, 160.0, 300.0), (130.0, 100.0, 190.0, 300.0)]
    ids = None
    for i in range(3):
        det, looks = _two(still, [0, 1])
        step = tracker.update(det, i * 0.1, looks)
        ids = dict(
            zip(step.matched.det_index.tolist(), step.matched.track_ids.tolist(), strict=True)
        )
    assert ids is not None
    # Same looks, but the red walker (colour 0) is now drawn where the green one stood, and
    # the other way round, each a little off: overlap prefers the swap.
    det, looks = _two([(127.0, 100.0, 187.0, 300.0), (103.0, 100.0, 163.0, 300.0)], [0, 1])
    step = tracker.update(det, 0.3, looks)
    now = dict(zip(step.matched.det_index.tolist(), step.matched.track_ids.tolist(), strict=True))
    assert (now[0] == ids[0] and now[1] == ids[1]) is kept


def test_a_tie_with_an_unknown_look_is_left_to_the_overlap() -> None:
    """If one walker's look is unknown (hidden so far), appearance cannot break the tie: the
    walker seen well would otherwise win every tie against them."""
    tracker = ByteTracker(min_hits=1, appearance_weight=2.0, high_score=0.5, low_score=0.3)
    still = [(100.0, 100.0, 160.0, 300.0), (130.0, 100.0, 190.0, 300.0)]
    ids = {}
    for i in range(3):
        det, looks = _two(still, [0, 1])
        looks.valid[0] = False  # the first walker is never seen clearly
        step = tracker.update(det, i * 0.1, looks)
        ids = dict(
            zip(step.matched.det_index.tolist(), step.matched.track_ids.tolist(), strict=True)
        )
    det, looks = _two([(127.0, 100.0, 187.0, 300.0), (103.0, 100.0, 163.0, 300.0)], [0, 1])
    step = tracker.update(det, 0.3, looks)
    now = dict(zip(step.matched.det_index.tolist(), step.matched.track_ids.tolist(), strict=True))
    assert now[0] == ids[1] and now[1] == ids[0]  # as overlap alone decides


def _one(box: tuple[float, float, float, float], colour: int) -> tuple[Detections, Descriptors]:
    return _detections([box]), _looks(colour, 1)


@pytest.mark.parametrize(("limit", "resumed"), [(10.0, True), (1.5, False)])
def test_motion_veto_keeps_a_lost_walker_from_a_stranger(limit: float, resumed: bool) -> None:
    """A walker is lost for half a second; someone dressed differently then stands near where
    the motion model expects them, not overlapping the predicted box: by motion alone they take
    the lost walker's id, unless ``motion_veto_distance`` asks the looks to agree."""
    tracker = ByteTracker(
        min_hits=1,
        high_score=0.5,
        low_score=0.3,
        reid_max_distance=1.0,
        appearance_veto_distance=10.0,
        motion_veto_distance=limit,
    )
    box = (100.0, 100.0, 160.0, 300.0)
    for i in range(3):
        det, looks = _one(box, 0)
        step = tracker.update(det, i * 0.1, looks)
    lost_id = int(step.matched.track_ids[0])
    for i in range(3, 8):
        tracker.tick(i * 0.1)
    det, looks = _one((150.0, 100.0, 210.0, 300.0), 1)  # IoU 0.09 with where the walker stood
    step = tracker.update(det, 0.8, looks)
    assert (int(step.matched.track_ids[0]) == lost_id) is resumed

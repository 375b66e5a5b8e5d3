"""The tracker on synthetic detections: ids survive what they should and only that."""

import numpy as np
import pytest

from edge_agent.vision.detection import Detections
from edge_agent.vision.settings import TrackerSettings
from edge_agent.vision.tracking import ByteTracker, EndedTrack, iou_matrix
from tests.unit.synthetic_faces import Walker, face_detections, run_tracker, timeline

FPS = 25.0


def _crossing_b_gap() -> list[tuple[float, float]]:
    # B is hidden behind A while their faces overlap (A at x=100+300t, B at x=1100-300t meet at
    # t=1.667 s).
    return [(1.55, 1.8)]


SCENARIOS = [
    pytest.param(
        [Walker("a", (40, 300), (290, 0), 0.0, 4.0)],
        6.0,
        {"a": 1},
        1,
        id="straight-crossing",
    ),
    pytest.param(
        [
            Walker("a", (100, 300), (300, 0), 0.0, 3.5),
            Walker("b", (1100, 330), (-300, 0), 0.0, 3.5, gaps=_crossing_b_gap()),
        ],
        4.0,
        {"a": 1, "b": 1},
        2,
        id="two-people-crossing-paths",
    ),
    pytest.param(
        [Walker("a", (200, 300), (40, 0), 0.0, 8.0, gaps=[(2.0, 5.0)])],
        9.0,
        {"a": 1},
        1,
        id="gap-3s-keeps-id",
    ),
    pytest.param(
        [Walker("a", (100, 300), (150, 5), 0.0, 7.0, gaps=[(2.0, 5.0)])],
        8.0,
        {"a": 1},
        1,
        id="gap-3s-walking-keeps-id",
    ),
    pytest.param(
        [Walker("a", (200, 300), (10, 0), 0.0, 12.0, gaps=[(2.0, 10.0)])],
        13.0,
        {"a": 2},
        2,
        id="gap-8s-new-id",
    ),
    pytest.param(
        [Walker("a", (60, 300), (250, 10), 0.0, 4.5, jitter=4.0)],
        5.0,
        {"a": 1},
        1,
        id="detection-jitter",
    ),
    pytest.param(
        [
            Walker(
                "a",
                (640, 360),
                (0, 0),
                0.0,
                60.0,
                jitter=1.5,
                gaps=[(10.0, 11.0), (20.0, 23.0), (40.0, 44.5)],
            )
        ],
        61.0,
        {"a": 1},
        1,
        id="stationary-person",
    ),
    pytest.param(
        [
            Walker("a", (640, 360), (0, 0), 0.0, 3.0),
            Walker("b", (640, 360), (0, 0), 10.0, 13.0),
        ],
        14.0,
        {"a": 1, "b": 1},
        2,
        id="sequential-visitors-same-spot",
    ),
    pytest.param(
        [
            Walker(
                "a",
                (60, 300),
                (200, 0),
                0.0,
                5.0,
                score_at=lambda t: 0.55 if 1.0 <= t < 3.0 else 0.9,
            )
        ],
        6.0,
        {"a": 1},
        1,
        id="low-score-detections-extend-track",
    ),
]


@pytest.mark.parametrize(("walkers", "duration", "ids_per_walker", "people"), SCENARIOS)
def test_tracker_scenarios(
    walkers: list[Walker], duration: float, ids_per_walker: dict[str, int], people: int
) -> None:
    tracker = ByteTracker()
    ids, ended = run_tracker(tracker, timeline(walkers, fps=FPS, duration=duration))
    assert {name: len(v) for name, v in ids.items()} == ids_per_walker
    assert len(ended) == people
    assert len(set(ended)) == people
    all_ids = [i for v in ids.values() for i in v]
    assert len(all_ids) == len(set(all_ids)), "two walkers shared an id"


def test_crossing_paths_keep_their_own_ids_after_crossing() -> None:
    walkers = [
        Walker("a", (100, 300), (300, 0), 0.0, 3.5),
        Walker("b", (1100, 330), (-300, 0), 0.0, 3.5, gaps=_crossing_b_gap()),
    ]
    tracker = ByteTracker()
    frames = timeline(walkers, fps=FPS, duration=3.5)
    first: dict[str, int] = {}
    for frame in frames:
        step = tracker.update(frame.detections, frame.t)
        for tid, di, conf in zip(
            step.matched.track_ids, step.matched.det_index, step.matched.confirmed, strict=True
        ):
            if conf:
                owner = frame.owners[di]
                assert first.setdefault(owner, int(tid)) == tid, f"{owner} changed id at {frame.t}"
    assert set(first) == {"a", "b"}


def test_absence_window_is_stream_time_not_frames() -> None:
    # The same 4 s gap keeps the id at any frame rate, and a 6 s gap ends it at any frame rate.
    for fps in (5.0, 10.0, 30.0):
        keep = [Walker("a", (300, 300), (0, 0), 0.0, 8.0, gaps=[(2.0, 6.0)])]
        ids, _ = run_tracker(ByteTracker(), timeline(keep, fps=fps, duration=8.0))
        assert len(ids["a"]) == 1, fps
        lose = [Walker("a", (300, 300), (0, 0), 0.0, 9.0, gaps=[(2.0, 8.0)])]
        ids, _ = run_tracker(ByteTracker(), timeline(lose, fps=fps, duration=9.0))
        assert len(ids["a"]) == 2, fps


def test_track_ends_once_absence_exceeds_the_window() -> None:
    tracker = ByteTracker(max_absence_seconds=5.0)
    walker = [Walker("a", (300, 300), (0, 0), 0.0, 2.0)]
    ended_at = None
    for frame in timeline(walker, fps=FPS, duration=9.0):
        step = tracker.update(frame.detections, frame.t)
        if step.ended:
            ended_at = frame.t
            (ended,) = step.ended
            assert ended.confirmed
            assert ended.first_seen == 0.0
            assert ended.last_seen == 2.0
            break
    assert ended_at is not None and 7.0 < ended_at <= 7.0 + 1.5 / FPS


def test_predicting_between_detector_runs() -> None:
    # Detector on every 3rd frame only, the tracker ticking on the others: still one id.
    walker = [Walker("a", (60, 300), (250, 0), 0.0, 4.0)]
    tracker = ByteTracker()
    ids: set[int] = set()
    for k, frame in enumerate(timeline(walker, fps=30.0, duration=4.0)):
        if k % 3:
            assert tracker.tick(frame.t) == ()
            continue
        step = tracker.update(frame.detections, frame.t)
        m = step.matched
        ids |= {int(i) for i, c in zip(m.track_ids, m.confirmed, strict=True) if c}
    assert len(ids) == 1


def test_single_false_detection_never_becomes_a_person() -> None:
    tracker = ByteTracker(min_hits=3, confirm_within_seconds=1.0)
    det = Detections.from_boxes([[10, 10, 50, 50]], [0.95])
    first = tracker.update(det, 0.0)
    assert len(first.matched) == 1 and not first.matched.confirmed[0]
    ended: list[EndedTrack] = []
    for k in range(1, 50):
        ended += tracker.update(Detections.empty(), k / FPS).ended
    assert [e.confirmed for e in ended] == [False]
    assert len(tracker) == 0


def test_state_stays_bounded_over_many_people() -> None:
    # 500 people walking past one after another (a busy spot for an hour): live tracks stay few
    # and every person is ended exactly once.
    tracker = ByteTracker()
    t, dt, most_live, ended = 0.0, 0.2, 0, []
    for person in range(500):
        y = 200.0 + (person % 5) * 60
        for k in range(6):  # visible for 1.2 s, crossing left to right
            x = 100.0 + k * 60
            det = Detections.from_boxes([[x - 30, y - 30, x + 30, y + 30]], [0.9])
            step = tracker.update(det, t)
            ended += [e.track_id for e in step.ended if e.confirmed]
            most_live = max(most_live, len(tracker))
            t += dt
        t += 0.5
    ended += [e.track_id for e in tracker.finish() if e.confirmed]
    assert len(ended) == len(set(ended)) == 500
    assert most_live <= 5


def test_cap_on_live_tracks_ends_the_stalest() -> None:
    tracker = ByteTracker(max_tracks=3, min_hits=1)
    for k in range(5):
        det = Detections.from_boxes([[k * 300, 0, k * 300 + 50, 50]], [0.9])
        step = tracker.update(det, float(k))
    assert len(tracker) == 3
    assert [e.track_id for e in step.ended] == [2]


def test_clock_going_back_does_not_break_anything() -> None:
    tracker = ByteTracker()
    det = face_detections([Walker("a", (300, 300), (0, 0), 0.0, 10.0)], 0.0).detections
    tracker.update(det, 5.0)
    step = tracker.update(det, 4.0)  # e.g. an NTP step on a live camera
    assert len(step.matched) == 1 and step.ended == ()


def test_from_settings_and_argument_checks() -> None:
    tracker = ByteTracker.from_settings(TrackerSettings(max_absence_seconds=2.5))
    assert tracker.max_absence == 2.5
    with pytest.raises(
        ValueError, match=r"need 0 <= low_score <= high_score <= 1, got 0.8 and 0.6"
    ):
        ByteTracker(low_score=0.8, high_score=0.6)
    with pytest.raises(ValueError, match=r"max_absence_seconds must be > 0, got 0"):
        ByteTracker(max_absence_seconds=0)
    with pytest.raises(ValueError, match=r"match_iou must be within \(0, 1\], got 1.5"):
        ByteTracker(match_iou=1.5)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert iou_matrix(a[:0], b).shape == (0, 3)

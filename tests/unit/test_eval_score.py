"""Scoring against ground truth, the seed-style tracker, and the detector benchmark's AP, on
hand-built runs whose right answers are known."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.evaluation.detector_bench import WiderImage, _match, _Matches, average_precision
from edge_agent.evaluation.evaluate import score_clip
from edge_agent.evaluation.scenario import GroundTruth, GtPerson, ScenarioSpec
from edge_agent.evaluation.score import FrameTracks, RunRecord, score_run
from edge_agent.evaluation.seed import CentroidTracker
from edge_agent.vision.best_faces import FirstFaces
from edge_agent.vision.detection import Detections, FakeDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import ClassifierSettings
from edge_agent.vision.tracking import EndedTrack
from footfall.contract import AgeGroup, Direction, Gender, PersonEvent
from footfall.contract.examples import example_event
from footfall.contract.topics import AgentAddress
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import Walker, face_image, timeline

START = datetime(2026, 5, 1, tzinfo=UTC)


def _person(
    pid: int, y: float, direction: Direction, frames: range, visible: float = 1.0
) -> GtPerson:
    boxes = [(10.0 * f, y, 10.0 * f + 40, y + 50) for f in frames]
    return GtPerson(
        id=pid,
        face_file=f"{pid}.jpg",
        gender=Gender.FEMALE if pid % 2 else Gender.MALE,
        age=30,
        age_group=AgeGroup.G25_32,
        direction=direction,
        entry_time=frames[0] / 10,
        exit_time=frames[-1] / 10,
        frames=list(frames),
        boxes=boxes,
        visible=[visible] * len(frames),
    )


def _truth(*people: GtPerson) -> GroundTruth:
    spec = ScenarioSpec(name="hand", width=640, height=480, fps=10.0)
    return GroundTruth(spec=spec, frames=40, fps=10.0, width=640, height=480, people=list(people))


def _event(
    track: int, direction: Direction, gender: Gender, years: float | None = 30
) -> PersonEvent:
    return example_event(track_id=track, direction=direction, gender=gender, age_years=years)


def _follow(truth: GroundTruth, owner: dict[int, dict[int, int]]) -> RunRecord:
    """Tracks on every frame; ``owner[frame][person] = track`` (default: track = 100 + person)."""
    run = RunRecord(frames=truth.frames)
    for f in range(truth.frames):
        ids, boxes = [], []
        for p in truth.people:
            if f in p.frames:
                ids.append(owner.get(f, {}).get(p.id, 100 + p.id))
                boxes.append(p.boxes[p.frames.index(f)])
        run.tracks[f] = FrameTracks(ids, np.array(boxes, np.float32).reshape(-1, 4))
    return run


def test_a_perfect_run_scores_perfectly() -> None:
    truth = _truth(
        _person(1, 50, Direction.IN, range(0, 30)), _person(2, 200, Direction.OUT, range(5, 40))
    )
    run = _follow(truth, {})
    run.events = [
        _event(101, Direction.IN, Gender.FEMALE),
        _event(102, Direction.OUT, Gender.MALE),
    ]
    score = score_run(truth, run, config="ours")
    assert (score.events, score.true_people, score.count_error) == (2, 2, 0.0)
    assert score.direction_accuracy == 1.0
    assert (score.id_switches, score.fragmentations) == (0, 0)
    assert score.gender_accuracy == 1.0 and score.gender_unknown_share == 0.0
    assert score.age_exact == 1.0 and score.age_one_off == 1.0
    assert (score.missed_people, score.split_people, score.spurious_events) == (0, 0, 0)
    assert score.mota == 1.0 and score.idf1 == 1.0


def test_swapped_ids_split_people_and_spurious_events_are_counted() -> None:
    truth = _truth(
        _person(1, 50, Direction.IN, range(0, 30)),
        _person(2, 120, Direction.OUT, range(0, 30)),
        _person(3, 300, Direction.PASSED, range(0, 30)),
    )
    # From frame 20 the tracks of persons 1 and 2 swap; person 3's track breaks at frame 15
    # into a second one.
    owner = {f: {1: 102, 2: 101} for f in range(20, 30)}
    for f in range(15, 30):
        owner.setdefault(f, {})[3] = 200
    run = _follow(truth, owner)
    run.events = [
        _event(101, Direction.IN, Gender.MALE),  # person 1's (20 frames): gender wrong
        _event(102, Direction.OUT, Gender.UNKNOWN, None),  # person 2's: unknown
        _event(103, Direction.PASSED, Gender.FEMALE, 70),  # person 3, first part
        _event(200, Direction.PASSED, Gender.FEMALE, 70),  # person 3, second part (primary)
        _event(999, Direction.IN, Gender.FEMALE),  # never followed anyone
    ]
    score = score_run(truth, run, config="ours")
    assert score.id_switches == 3  # two at the swap, one where person 3 changed track
    assert score.split_people == 1 and score.spurious_events == 1
    assert score.matched_people == 3 and score.missed_people == 0
    assert score.count_error == pytest.approx(2 / 3, abs=1e-4)
    assert score.direction_accuracy == 1.0
    assert score.gender_unknown_share == pytest.approx(1 / 3, abs=1e-4)
    assert score.gender_accuracy == pytest.approx(1 / 2)  # person 1 wrong, person 3 right
    assert score.age_exact == pytest.approx(1 / 2)  # person 3: 70 years is 60-100, not 25-32
    assert score.age_one_off == pytest.approx(1 / 2)


def test_faces_mostly_hidden_are_neither_objects_nor_false_positives() -> None:
    truth = _truth(_person(1, 50, Direction.IN, range(0, 20), visible=0.3))
    run = _follow(truth, {})
    score = score_run(truth, run, config="ours")
    assert score.mota == 1.0 or score.mota is None  # nothing to find, nothing wrongly found
    assert score.matched_people == 0 and score.missed_people == 1


def test_centroid_tracker_hands_a_stale_id_to_a_newcomer() -> None:
    tracker = CentroidTracker(max_disappeared=5)
    left = Detections.from_boxes([[10, 10, 50, 60]], [0.9])
    right = Detections.from_boxes([[500, 300, 540, 350]], [0.9])
    for i in range(3):
        step = tracker.update(left, i * 0.1)
    assert step.matched.track_ids.tolist() == [1]  # mature from its third frame
    # Gone for three frames, then someone appears at the far side: the seed gave them id 1.
    for i in range(3, 6):
        tracker.update(Detections.empty(), i * 0.1)
    step = tracker.update(right, 0.6)
    assert step.matched.track_ids.tolist() == [1]
    # Unmatched for more than max_disappeared frames ends an object.
    ended: list[EndedTrack] = []
    for i in range(7, 14):
        ended += tracker.update(Detections.empty(), i * 0.1).ended
    assert [e.track_id for e in ended] == [1] and ended[0].confirmed


def test_average_precision_by_hand() -> None:
    ap, precision, recall = average_precision([0.9, 0.8, 0.7], [True, False, True], faces=2)
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    assert recall.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert average_precision([], [], faces=3)[0] == 0.0


def test_detections_on_ignored_faces_are_neither_right_nor_wrong() -> None:
    image = WiderImage(
        "x.jpg",
        np.array([[0, 0, 20, 20], [100, 100, 110, 110]], np.float32),
        np.zeros(2, bool),
        {"easy": np.array([True, False]), "medium": np.array([True, True])},
    )
    det = Detections.from_boxes(
        [[1, 1, 20, 20], [100, 100, 110, 111], [300, 300, 320, 320]], [0.9, 0.8, 0.7]
    )
    easy, medium = _Matches(), _Matches()
    _match(det, image, "easy", easy)
    _match(det, image, "medium", medium)
    assert (easy.faces, easy.true_pos) == (1, [True, False])  # the small face is ignored
    assert (medium.faces, medium.true_pos) == (2, [True, True, False])


def test_seed_style_pipeline_classifies_the_first_mature_face_once() -> None:
    frames = timeline([Walker("a", (60, 240), (200, 0), 0.0, 2.5, size=70)], fps=10, duration=2.5)
    classifier = FakeClassifier()
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=classifier,
        address=AgentAddress("site-a", "spot-1", "cam-1"),
        classify=ClassifierSettings(k_best=1, min_quality=0.0),
        track_with=CentroidTracker(),
        face_keeper=FirstFaces,
    )
    out = []
    for f in frames:
        image = face_image(640, 480, f.detections.boxes, seed=int(f.t * 1000))
        out += pipe.step(image, START + timedelta(seconds=f.t))
    out += pipe.finish()
    (person,) = out
    assert person.event.direction is Direction.IN
    assert classifier.batches == [1]  # K = 1: one face
    assert person.event.face.samples == 1


def test_real_clip_score_owns_tracks_by_head_region(tmp_path: Path) -> None:
    # Two pedestrians (MOTChallenge body boxes, 1-based frames); pedestrian 1's head is seen by
    # tracks 5 and 6 (split), pedestrian 2 never; track 7 sits on nobody's head.
    gt = tmp_path / "clip.gt.txt"
    gt.write_text(
        "\n".join(
            f"{f + 1},{pid},{x},100,40,120,1,-1,-1,-1"
            for f in range(4)
            for pid, x in ((1, 100), (2, 300))
        ),
        encoding="utf-8",
    )
    head = np.array([[110, 105, 130, 125]], np.float32)
    nowhere = np.array([[500, 400, 520, 420]], np.float32)
    run = RunRecord(frames=4)
    run.tracks = {
        0: FrameTracks([5], head),
        1: FrameTracks([5], head),
        2: FrameTracks([6], head),
        3: FrameTracks([7], nowhere),
    }
    run.events = [_event(5, Direction.IN, Gender.MALE), _event(6, Direction.IN, Gender.MALE)]
    run.events.append(_event(7, Direction.PASSED, Gender.MALE))
    score = score_clip(Path("clip.mp4"), gt, run, config="ours")
    assert (score.true_people, score.events, score.people_found) == (2, 3, 1)
    assert (score.people_split, score.events_without_person) == (1, 1)


def test_a_person_mode_run_is_recorded_by_the_faces_on_its_bodies() -> None:
    from edge_agent.config import AgentConfig
    from edge_agent.evaluation.evaluate import record_runs

    frames = 8
    bodies = [
        Detections.from_boxes([[100 + 10 * i, 100, 200 + 10 * i, 400]], [0.8])
        for i in range(frames)
    ]
    faces = [
        Detections.from_boxes([[120 + 10 * i, 105, 180 + 10 * i, 165]], [0.95])
        if i % 2 == 0
        else Detections.empty()
        for i in range(frames)
    ]

    def pipeline() -> Pipeline:
        cfg = AgentConfig.model_validate(
            {"site": "s", "spot": "p", "agent": "a", "person": {"face_search": "frame"}}
        )
        return Pipeline.from_config(
            cfg,
            detector=FakeDetector(faces),
            classifier=FakeClassifier(),
            person_detector=FakeDetector(bodies),
        )

    images = [(i, face_image(640, 480, faces[i].boxes, seed=i)) for i in range(frames)]
    by_body = record_runs({"p": pipeline()}, images, 10.0)["p"]
    by_face = record_runs({"p": pipeline()}, images, 10.0, face_boxes=True)["p"]
    confirmed = [i for i in sorted(by_body.tracks) if by_body.tracks[i].track_ids]
    assert confirmed and set(by_face.tracks) == set(by_body.tracks)
    for i in confirmed:
        body_heights = by_body.tracks[i].boxes[:, 3] - by_body.tracks[i].boxes[:, 1]
        assert body_heights.tolist() == pytest.approx([300.0], abs=10.0)
        # Frames with a face attached give its box; frames without one leave the track out.
        assert by_face.tracks[i].boxes.reshape(-1).tolist() == pytest.approx(
            faces[i].boxes.reshape(-1).tolist()
        )
        assert len(by_face.tracks[i].track_ids) == len(faces[i])

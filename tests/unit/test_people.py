"""Person mode: faces attached to bodies, the counting point, NanoDet's decoding, and the
pipeline counting bodies whether or not a face is seen."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge_agent.config import AgentConfig
from edge_agent.vision.detection import Detections, FakeDetector
from edge_agent.vision.people import assign_faces, count_point, head_boxes
from edge_agent.vision.person_detection import decode, input_shape
from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.settings import CountPoint, PersonSettings, PipelineMode
from footfall.contract import Direction, Gender
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import face_image

START = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
W, H = 640, 480
# The scripted faces are in frame pixels: the whole-frame search takes them as they are (the
# upper-body search, which calls the detector on crops, is tested in test_face_search.py).
FRAME: dict[str, object] = {"person": {"face_search": "frame"}}


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def test_each_face_goes_to_the_body_whose_head_holds_it() -> None:
    bodies = _boxes((100, 100, 160, 300), (140, 110, 200, 310), (400, 100, 460, 300))
    # Face 0 sits on body 1's head, face 1 on body 0's; face 2 is at body 2's knees.
    faces = _boxes((160, 112, 180, 132), (120, 102, 140, 122), (420, 250, 440, 270))
    assert assign_faces(bodies, faces, 0.4) == [1, 0, None]


def test_one_face_two_candidate_bodies_goes_to_the_nearer_head() -> None:
    bodies = _boxes((100, 100, 200, 400), (130, 100, 230, 400))
    faces = _boxes((170, 105, 190, 125))  # centre x 180: body 1's head centre (180) exactly
    assert assign_faces(bodies, faces, 0.4) == [None, 0]


def test_no_faces_or_no_bodies() -> None:
    assert assign_faces(_boxes((0, 0, 10, 10)), _boxes(), 0.4) == [None]
    assert assign_faces(_boxes(), _boxes((0, 0, 10, 10)), 0.4) == []


def test_count_point_foot_and_centre() -> None:
    box = np.array([10, 20, 30, 120], np.float32)
    assert count_point(box, CountPoint.FOOT) == (20.0, 120.0)
    assert count_point(box, CountPoint.CENTRE) == (20.0, 70.0)
    assert count_point(box, None) == (20.0, 70.0)


def test_head_box_is_at_the_top_centre() -> None:
    (head,) = head_boxes(_boxes((100, 100, 160, 300)))
    assert head[1] == 100 and (head[0] + head[2]) / 2 == pytest.approx(130)
    assert head[3] - head[1] == pytest.approx(28)


def test_input_shape_keeps_the_aspect_and_pads_to_32() -> None:
    assert input_shape(1280, 720, 320) == (320, 192, 0.25)
    assert input_shape(640, 480, 320)[:2] == (320, 256)
    assert input_shape(200, 100, 320)[:2] == (224, 128)  # never upscaled


def test_decode_reads_the_distance_distributions() -> None:
    size = (64, 64)
    outputs = {}
    for stride in (8, 16, 32):
        cells = (64 // stride) ** 2
        outputs[stride] = (
            np.zeros((cells, 80), np.float32),
            np.zeros((cells, 44), np.float32),
        )
    cls, reg = outputs[16]
    cls[5, 0] = 0.9  # cell row 1, col 1 of a 4x4 grid: centre (24, 24)
    bins = np.full((4, 11), -50.0, np.float32)
    bins[:, 2] = 50.0  # every side 2 bins = 32 px away
    reg[5] = bins.reshape(-1)
    cls[6, 1] = 0.99  # another class: ignored
    boxes, scores = decode(outputs, size, 0.5, 0.35)
    assert scores.tolist() == pytest.approx([0.9])
    assert boxes[0].tolist() == pytest.approx([-16.0, -16.0, 112.0, 112.0])


def _person_run(
    bodies: list[Detections], faces: list[Detections], **config: object
) -> list[FinishedPerson]:
    cfg = AgentConfig.model_validate({"site": "s", "spot": "p", "agent": "a", **FRAME, **config})
    pipe = Pipeline.from_config(
        cfg,
        detector=FakeDetector(faces),
        classifier=FakeClassifier(),
        person_detector=FakeDetector(bodies),
    )
    out: list[FinishedPerson] = []
    for i, f in enumerate(faces):
        image = face_image(W, H, f.boxes, seed=i)
        out += pipe.step(image, START + timedelta(seconds=i / 10))
    return out + pipe.finish()


def _walk(n: int, x0: float, dx: float, face: bool) -> tuple[list[Detections], list[Detections]]:
    bodies, faces = [], []
    for i in range(n):
        x = x0 + dx * i
        bodies.append(Detections.from_boxes([[x, 100, x + 100, 400]], [0.8]))
        faces.append(
            Detections.from_boxes([[x + 20, 105, x + 80, 165]], [0.95])
            if face
            else Detections.empty()
        )
    return bodies, faces


def test_person_mode_counts_a_body_with_no_face_as_unknown() -> None:
    bodies, faces = _walk(30, 100, 15, face=False)
    (person,) = _person_run(bodies, faces)
    event = person.event
    assert event.direction is Direction.IN  # foot point crossed the vertical centre line
    assert event.gender.label is Gender.UNKNOWN and event.face.samples == 0
    assert event.counted_by == PipelineMode.PERSON.value
    assert event.face.note is not None and "no face" in event.face.note
    assert [m.name for m in event.models][:2] == ["fake", "fake"]


def test_person_mode_takes_the_faces_found_on_the_body() -> None:
    bodies, faces = _walk(30, 500, -15, face=True)
    (person,) = _person_run(bodies, faces)
    event = person.event
    assert event.direction is Direction.OUT
    assert event.gender.label is Gender.MALE and event.face.samples > 0
    assert event.face.note is None


def test_face_mode_still_tracks_faces() -> None:
    _, faces = _walk(30, 100, 15, face=True)
    cfg = AgentConfig.model_validate({"site": "s", "spot": "p", "agent": "a", "mode": "face"})
    pipe = Pipeline.from_config(cfg, detector=FakeDetector(faces), classifier=FakeClassifier())
    out: list[FinishedPerson] = []
    for i, f in enumerate(faces):
        out += pipe.step(face_image(W, H, f.boxes, seed=i), START + timedelta(seconds=i / 10))
    (person,) = out + pipe.finish()
    assert person.event.counted_by == PipelineMode.FACE.value


def test_person_mode_without_a_person_detector_is_refused() -> None:
    cfg = AgentConfig.model_validate({"site": "s", "spot": "p", "agent": "a"})
    with pytest.raises(ValueError, match="person detector"):
        Pipeline.from_config(cfg, detector=FakeDetector([]), classifier=FakeClassifier())


def test_person_settings_check_their_scores() -> None:
    with pytest.raises(ValueError, match="low_score"):
        PersonSettings(score_threshold=0.4, low_score=0.3, high_score=0.5)


def test_the_view_says_which_face_is_on_which_body_and_the_drawing_shows_it() -> None:
    from edge_agent.vision.annotate import FrameAnnotator

    bodies, faces = _walk(5, 100, 10, face=True)
    cfg = AgentConfig.model_validate({"site": "s", "spot": "p", "agent": "a", **FRAME})
    pipe = Pipeline.from_config(
        cfg,
        detector=FakeDetector(faces),
        classifier=FakeClassifier(),
        person_detector=FakeDetector(bodies),
    )
    for i, f in enumerate(faces):
        pipe.step(face_image(W, H, f.boxes, seed=i), START + timedelta(seconds=i / 10))
    view = pipe.view()
    assert view is not None and len(view.detections) == 1 and len(view.faces) == 1
    (tid,) = view.tracks.track_ids.tolist()
    assert view.attached == {tid: 0}
    blank = np.zeros((H, W, 3), np.uint8)
    drawn = FrameAnnotator().draw(blank.copy(), view)
    x1, y1, x2, _ = view.faces.boxes[0].astype(int)
    assert drawn[y1, x1 + 2 : x2 - 2].any()  # the face's top edge is drawn

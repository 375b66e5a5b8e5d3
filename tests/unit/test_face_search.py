"""Person mode's face search: crops on the upper part of each body (planned, merged where they
overlap, enlarged, clipped at the frame border), faces mapped back to frame pixels, and the
pipeline classifying a face only the enlarged crop shows the detector."""

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.config import AgentConfig
from edge_agent.vision.detection import Detections, FakeDetector
from edge_agent.vision.face_search import (
    FACE_PX,
    LARGE_FACE_PX,
    MAX_SCALE,
    MAX_SIDE,
    FaceCrop,
    crop_pixels,
    find_faces,
    plan_crops,
    to_frame,
    upper_regions,
)
from edge_agent.vision.people import HEAD_SHARE
from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.settings import FaceSearch, PersonSettings
from footfall.contract import Gender, ModelRef, ModelRole
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import face_image

W, H = 640, 480
START = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
U8 = npt.NDArray[np.uint8]


def _boxes(*rows: tuple[float, float, float, float]) -> npt.NDArray[np.float32]:
    return np.array(rows, np.float32).reshape(-1, 4)


class BlobDetector:
    """Finds the bright blobs :func:`face_image` draws, as a real detector finds faces: only
    those at least ``min_px`` high in the image it is given (so a frame shrunk or a crop
    enlarged changes what it finds), and records the size of every image it was given."""

    def __init__(self, min_px: float) -> None:
        self.min_px = min_px
        self.sizes: list[tuple[int, int]] = []

    @property
    def model(self) -> ModelRef:
        return ModelRef(role=ModelRole.DETECTOR, name="blobs", version="1")

    def detect(self, frame: U8) -> Detections:
        self.sizes.append((frame.shape[1], frame.shape[0]))
        mask = (frame.min(axis=2) >= 140).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        rows = [
            (x, y, x + w, y + h)
            for x, y, w, h, _area in stats[1:n].tolist()
            if h >= self.min_px and w >= self.min_px / 2
        ]
        return Detections.from_boxes(rows, [0.95] * len(rows)).clipped(
            frame.shape[1], frame.shape[0]
        )


def test_a_lone_body_gets_its_upper_part_enlarged_to_the_face_size() -> None:
    (crop,) = plan_crops(_boxes((100, 100, 140, 240)), 0.4, W, H)
    x1, y1, x2, y2 = crop.box
    # 15 % of the width either side, 10 % above, the top 40 % plus half a width below.
    assert (x1, y1, x2, y2) == (94, 96, 146, 176)
    scale = FACE_PX / (HEAD_SHARE * 140)
    assert crop.size == (round(52 * scale), round(80 * scale))
    assert crop.bodies == (0,)


@pytest.mark.parametrize(
    ("body", "scale"),
    [
        ((100, 100, 110, 130), MAX_SCALE),  # a tiny far body: enlarged at most MAX_SCALE
        ((100, 50, 300, 450), 1.0),  # expected face 56 px: left as it is
        ((100, 0, 400, 480), LARGE_FACE_PX / (HEAD_SHARE * 480)),  # a close-up: shrunk
    ],
)
def test_the_scale_is_bounded(body: tuple[float, float, float, float], scale: float) -> None:
    (crop,) = plan_crops(_boxes(body), 0.4, W, H)
    assert crop.ratio == pytest.approx((scale, scale), rel=0.03)


def test_a_crop_wider_than_max_side_is_shrunk_to_it() -> None:
    (crop,) = plan_crops(_boxes((0, 0, 1900, 1000)), 0.4, 1920, 1080)
    assert max(crop.size) == MAX_SIDE


def test_overlapping_bodies_share_one_crop_and_apart_ones_do_not() -> None:
    bodies = _boxes((100, 100, 160, 300), (150, 110, 210, 310), (400, 100, 460, 300))
    crops = plan_crops(bodies, 0.4, W, H)
    assert sorted(c.bodies for c in crops) == [(0, 1), (2,)]
    shared = next(c for c in crops if c.bodies == (0, 1))
    regions = upper_regions(bodies, 0.4, W, H)
    x1, y1, x2, y2 = shared.box
    assert x1 <= regions[:2, 0].min() and x2 >= regions[:2, 2].max()
    assert y1 <= regions[:2, 1].min() and y2 >= regions[:2, 3].max()


def test_a_union_that_reaches_a_third_region_takes_it_too() -> None:
    # Bodies 0 and 1 overlap; their union (not either alone) reaches body 2's region.
    bodies = _boxes((100, 100, 160, 300), (150, 200, 210, 400), (120, 290, 140, 330))
    (crop,) = plan_crops(bodies, 0.4, W, H)
    assert crop.bodies == (0, 1, 2)


def test_crops_at_the_frame_border_are_clipped() -> None:
    bodies = _boxes((-30, -20, 40, 200), (600, 10, 660, 300), (700, 10, 760, 300))
    crops = plan_crops(bodies, 0.4, W, H)
    assert [c.bodies for c in crops] == [(0,), (1,)]  # body 2 lies outside the frame
    for crop in crops:
        x1, y1, x2, y2 = crop.box
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
    assert crops[0].box[:2] == (0, 0) and crops[1].box[2] == W
    frame = np.zeros((H, W, 3), np.uint8)
    assert crop_pixels(frame, crops[1]).shape == (crops[1].size[1], crops[1].size[0], 3)


def test_a_face_found_in_a_crop_lands_at_its_frame_coordinates() -> None:
    crop = FaceCrop(box=(100, 50, 150, 90), size=(150, 120), bodies=(0,))  # 3x each way
    landmarks = np.tile(np.array([[30.0, 30.0]], np.float32), (5, 1))[None]
    found = Detections.from_boxes([[30, 15, 60, 51]], [0.9], landmarks)
    (box,) = to_frame(found, crop, W, H).boxes
    assert box.tolist() == pytest.approx([110, 55, 120, 67])
    assert to_frame(found, crop, W, H).landmarks[0, 0].tolist() == pytest.approx([110, 60])
    nan = to_frame(Detections.from_boxes([[30, 15, 60, 51]], [0.9]), crop, W, H)
    assert np.isnan(nan.landmarks).all()  # no landmarks stay no landmarks


def test_a_face_mapped_past_the_frame_edge_is_clipped() -> None:
    crop = FaceCrop(box=(600, 0, 640, 40), size=(80, 80), bodies=(0,))
    found = Detections.from_boxes([[60, -10, 100, 30]], [0.9])  # partly outside the crop
    (box,) = to_frame(found, crop, W, H).boxes
    assert box.tolist() == pytest.approx([630, 0, 640, 15])


def test_each_face_belongs_to_the_body_whose_crop_found_it() -> None:
    # Two far bodies side by side (one crop) and one apart; faces on their heads, 10 px high.
    bodies = _boxes((100, 100, 130, 180), (125, 103, 155, 183), (400, 100, 430, 180))
    faces = _boxes((110, 102, 120, 112), (135, 105, 145, 115), (410, 102, 420, 112))
    frame = face_image(W, H, faces)
    detector = BlobDetector(min_px=20)
    found, face_of = find_faces(FaceSearch.UPPER_BODY, detector, frame, bodies, 0.4)
    assert len(detector.sizes) == 2  # one detector call per crop, not per body
    assert len(found) == 3
    for body, face in enumerate(face_of):
        assert face is not None
        assert found.boxes[face].tolist() == pytest.approx(faces[body].tolist(), abs=1.0)
    # The whole frame shows the detector 10 px faces: it finds none.
    whole, none = find_faces(FaceSearch.FRAME, detector, frame, bodies, 0.4)
    assert len(whole) == 0 and none == [None, None, None]


def test_no_bodies_no_detector_call() -> None:
    detector = BlobDetector(min_px=1)
    found, face_of = find_faces(
        FaceSearch.UPPER_BODY, detector, np.zeros((H, W, 3), np.uint8), _boxes(), 0.4
    )
    assert len(found) == 0 and face_of == [] and detector.sizes == []


def test_face_search_is_validated() -> None:
    assert PersonSettings(face_search="upper_body").face_search is FaceSearch.UPPER_BODY
    with pytest.raises(ValueError, match="face_search"):
        PersonSettings(face_search="head")


def _walk_past(search: FaceSearch) -> FinishedPerson:
    """A person 160 px tall with a 20 px face walks across; the detector needs 26 px."""
    cfg = AgentConfig.model_validate(
        {
            "site": "s",
            "spot": "p",
            "agent": "a",
            "person": {"face_search": search.value},
            "classifier": {"min_expected_accuracy": 0.5},
        }
    )
    frames = 30
    bodies = [
        Detections.from_boxes([[100 + 15 * i, 150, 160 + 15 * i, 310]], [0.8])
        for i in range(frames)
    ]
    pipe = Pipeline.from_config(
        cfg,
        detector=BlobDetector(min_px=26),
        classifier=FakeClassifier(),
        person_detector=FakeDetector(bodies),
    )
    out: list[FinishedPerson] = []
    for i in range(frames):
        x = 120 + 15 * i
        image = face_image(W, H, _boxes((x, 153, x + 20, 173)), seed=i)
        out += pipe.step(image, START + timedelta(seconds=i / 10))
    (person,) = out + pipe.finish()
    return person


def test_the_upper_body_search_attaches_a_face_the_pipeline_classifies() -> None:
    found = _walk_past(FaceSearch.UPPER_BODY).event
    assert found.gender.label is Gender.MALE and found.face.samples > 0
    # The same walk searched on the whole frame: the face is too small there, nobody is judged.
    missed = _walk_past(FaceSearch.FRAME).event
    assert missed.gender.label is Gender.UNKNOWN and missed.face.samples == 0
    assert missed.face.note is not None and "no face" in missed.face.note

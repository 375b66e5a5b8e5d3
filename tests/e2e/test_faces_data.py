"""Detection and classification on the shared photos (../shared/data/faces)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.build import build_classifier, build_detector
from edge_agent.vision.classification import combine
from edge_agent.vision.detection import FaceDetector
from edge_agent.vision.settings import ClassifierSettings, DetectorSettings
from footfall.contract import AgeGroup, Gender
from models.assets import ModelResolver
from models.runtime.alignment import align_face

pytestmark = pytest.mark.data

# Faces in each photo, counted by eye.
PHOTOS = {
    "obama.jpg": 1,
    "biden.jpg": 1,
    "two_people.jpg": 2,
    "obama_small.jpg": 1,
    "astronaut.png": 1,
}


def _photo(shared_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(shared_dir / "data" / "faces" / name))
    assert image is not None, name
    return np.asarray(image)


def _detector(models_dir: Path, **settings: object) -> FaceDetector:
    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    return build_detector(DetectorSettings.model_validate(settings), resolver)


@pytest.mark.parametrize("kind", ["yunet", "ssd"])
def test_detectors_find_every_face_in_the_photos(
    shared_dir: Path, models_dir: Path, kind: str
) -> None:
    detector = _detector(models_dir, kind=kind)
    for name, faces in PHOTOS.items():
        image = _photo(shared_dir, name)
        det = detector.detect(image)
        strong = det.select(det.scores >= 0.7)
        assert len(strong) == faces, f"{kind} on {name}: {det.scores}"
        h, w = image.shape[:2]
        assert (strong.boxes >= 0).all() and (strong.boxes[:, 2] <= w).all()
        assert (strong.boxes[:, 3] <= h).all()
        assert (strong.boxes[:, 3] - strong.boxes[:, 1] > 30).all()
        assert strong.has_landmarks.all() == (kind == "yunet")


def test_yunet_boxes_are_the_same_at_any_detection_width(
    shared_dir: Path, models_dir: Path
) -> None:
    # Detecting on a scaled-down frame maps boxes back to the full frame.
    image = _photo(shared_dir, "two_people.jpg")
    small = _detector(models_dir, input_width=320).detect(image)
    large = _detector(models_dir, input_width=1126).detect(image)
    order_s, order_l = np.argsort(small.boxes[:, 0]), np.argsort(large.boxes[:, 0])
    heights = large.boxes[order_l, 3] - large.boxes[order_l, 1]
    error = np.abs(small.boxes[order_s] - large.boxes[order_l]).max(axis=1)
    assert (error < 0.1 * heights).all(), error


@pytest.mark.parametrize(
    ("name", "gender", "groups"),
    [
        # A middle-aged man, an old man, a woman in her thirties or forties (by eye); the group
        # may be off by one neighbour, since the photos' exact dates are not known here.
        ("obama.jpg", Gender.MALE, {AgeGroup.G38_43, AgeGroup.G48_53}),
        ("biden.jpg", Gender.MALE, {AgeGroup.G48_53, AgeGroup.G60_100}),
        ("astronaut.png", Gender.FEMALE, {AgeGroup.G25_32, AgeGroup.G38_43}),
    ],
)
def test_classifier_on_known_faces(
    shared_dir: Path, models_dir: Path, name: str, gender: Gender, groups: set[AgeGroup]
) -> None:
    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    classifier = build_classifier(ClassifierSettings(), resolver)
    image = _photo(shared_dir, name)
    det = _detector(models_dir).detect(image)
    chip = align_face(image, det.landmarks[int(np.argmax(det.scores))], classifier.chip_size)
    g, a = combine(classifier.classify(chip[None]), [1.0], min_gender_confidence=0.6)
    assert g.label is gender and g.confidence is not None and g.confidence > 0.9
    assert a.group in groups, a

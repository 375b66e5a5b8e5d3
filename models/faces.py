"""Face landmarks, 5-point alignment and ONNX age/gender inference, the way the edge does them.

Training, evaluation and fine-tuning all go through this one module so that they see faces exactly
as the agent does: YuNet landmarks -> the edge's own alignment (:func:`models.runtime.alignment.
align_face`: closed-form similarity transform onto the MODELS.md template, border replicated,
oversampled and area-downscaled) -> the edge's classifier (:class:`models.runtime.classifier.
OnnxFaceClassifier`: one chip at the largest size the heads need, shrunk with area interpolation
for a smaller head, ``(rgb - mean) / 256``, flip averaging on the mirrored chip).

Needs the ``edge`` extra (OpenCV, numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

try:
    import cv2
    import numpy as np
    import numpy.typing as npt
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "models.faces needs OpenCV and numpy: install the 'edge' extra (pip install -e '.[edge]')"
    ) from exc

from models.runtime.alignment import ALIGNMENT_TEMPLATE, align_face
from models.runtime.classifier import OnnxFaceClassifier, OnnxHead

FloatArray = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]

# Normalised 5-point template (right eye, left eye, nose tip, right and left mouth corner, in the
# order YuNet reports them) as fractions of the chip (MODELS.md): the edge's own.
TEMPLATE: FloatArray = ALIGNMENT_TEMPLATE

# Normalisation shared by the Cydral models and every model exported from this repository.
MEAN_RGB: tuple[float, float, float] = (122.782, 117.001, 104.298)
SCALE = 1.0 / 256.0

# Centres of the 81 age bins of the Cydral age model (and of the models trained here).
AGE_BIN_YEARS: FloatArray = np.array([0.25, *range(1, 81)], dtype=np.float32)


@dataclass(frozen=True)
class Landmarks:
    """Five facial landmarks (x, y) in image pixels, YuNet order, and the detection score."""

    points: FloatArray
    score: float
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.points.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {self.points.shape}")


def create_yunet(
    path: Path, score_threshold: float = 0.6, nms_threshold: float = 0.3
) -> cv2.FaceDetectorYN:
    return cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 50)


def detect_landmarks(
    image: Image, detector: cv2.FaceDetectorYN, pad: float = 0.25
) -> Landmarks | None:
    """Landmarks of the face nearest the image centre, or None when YuNet finds no face.

    A labelled face crop is filled by its face; YuNet misses faces that touch the border, so the
    crop is padded first (``pad`` of its size on every side) and the points shifted back.
    """
    h, w = image.shape[:2]
    py, px = round(h * pad), round(w * pad)
    padded = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    detector.setInputSize((padded.shape[1], padded.shape[0]))
    _, faces = detector.detect(padded)
    if faces is None or len(faces) == 0:
        return None
    centre = np.array([padded.shape[1] / 2, padded.shape[0] / 2], dtype=np.float32)
    box_centres = faces[:, 0:2] + faces[:, 2:4] / 2
    best = faces[int(np.argmin(np.linalg.norm(box_centres - centre, axis=1)))]
    points = best[4:14].reshape(5, 2).astype(np.float32) - np.array([px, py], dtype=np.float32)
    x, y, bw, bh = (float(v) for v in best[0:4])
    return Landmarks(points, float(best[14]), (x - px, y - py, bw, bh))


def align(image: Image, points: FloatArray, size: int, margin: float = 0.0) -> Image:
    """The edge's aligned ``size`` x ``size`` chip of a face, in the image's channel order.

    ``margin`` widens the view around the same face (for the training cache's context chips): the
    face occupies the central ``size / (1 + 2 * margin)`` pixels. ``margin=0`` is exactly the
    chip the agent classifies.
    """
    template = TEMPLATE if margin == 0 else (TEMPLATE + margin) / (1 + 2 * margin)
    return np.asarray(align_face(image, points, size, template=template), dtype=np.uint8)


@dataclass(frozen=True)
class FacePrediction:
    """What one classifier says about one face."""

    p_female: float
    age_probs: FloatArray = field(repr=False)

    @property
    def expected_age(self) -> float:
        return float(np.dot(self.age_probs, AGE_BIN_YEARS))


class FaceModel(Protocol):
    """Age and gender from aligned faces; each model aligns to the chip size it needs."""

    name: str

    def predict(self, image: Image, points: FloatArray) -> FacePrediction: ...

    def predict_batch(
        self, images: Sequence[Image], points: Sequence[FloatArray], flip: bool = False
    ) -> list[FacePrediction]: ...


class EdgeClassifierModel:
    """A gender head and an age head run by the edge's :class:`OnnxFaceClassifier`.

    Each face is aligned once, at the largest size the heads need (as the agent does), and the
    classifier shrinks the chip for a smaller head.
    """

    def __init__(self, gender: OnnxHead, age: OnnxHead, name: str) -> None:
        self.name = name
        # One classifier per mode: flip averaging is a property of the edge's classifier.
        self._classifiers = {
            flip: OnnxFaceClassifier(gender, age, flip_average=flip, models=())
            for flip in (False, True)
        }
        self.chip_size = self._classifiers[False].chip_size

    def predict(self, image: Image, points: FloatArray) -> FacePrediction:
        return self.predict_batch([image], [points])[0]

    def predict_batch(
        self, images: Sequence[Image], points: Sequence[FloatArray], flip: bool = False
    ) -> list[FacePrediction]:
        chips = [align(im, p, self.chip_size) for im, p in zip(images, points, strict=True)]
        return self.predict_chips(chips, flip)

    def predict_chips(self, chips: Sequence[Image], flip: bool = False) -> list[FacePrediction]:
        """Predictions for chips already aligned at ``chip_size``."""
        gender, age = self._classifiers[flip].probabilities(np.stack(list(chips)))
        # Gender outputs are ordered [female, male].
        return [
            FacePrediction(float(g[0]), np.asarray(a, dtype=np.float32))
            for g, a in zip(gender, age, strict=True)
        ]


class DnnAgeGender(EdgeClassifierModel):
    """One ONNX network with a gender output (softmax [female, male]) and an age output
    (81 bin probabilities), fed an aligned ``size`` x ``size`` RGB chip like the Cydral models."""

    def __init__(
        self,
        path: Path,
        size: int,
        name: str,
        gender_output: str = "gender",
        age_output: str = "age",
    ) -> None:
        super().__init__(
            OnnxHead(path, size, gender_output), OnnxHead(path, size, age_output), name
        )


class Ensemble:
    """Averages the gender and/or age probabilities of several models (weights per head)."""

    def __init__(
        self,
        name: str,
        members: Sequence[FaceModel],
        gender_weights: Sequence[float],
        age_weights: Sequence[float],
    ) -> None:
        if not (len(members) == len(gender_weights) == len(age_weights)) or not members:
            raise ValueError("an ensemble needs one gender and one age weight per member")
        if sum(gender_weights) <= 0 or sum(age_weights) <= 0:
            raise ValueError("ensemble weights of each head must add up to more than 0")
        self.name = name
        self.members = list(members)
        self.gw = np.array(gender_weights, dtype=np.float64) / sum(gender_weights)
        self.aw = np.array(age_weights, dtype=np.float64) / sum(age_weights)

    def predict(self, image: Image, points: FloatArray) -> FacePrediction:
        return self.predict_batch([image], [points])[0]

    def predict_batch(
        self, images: Sequence[Image], points: Sequence[FloatArray], flip: bool = False
    ) -> list[FacePrediction]:
        per_member = [
            m.predict_batch(images, points, flip) if (g > 0 or a > 0) else None
            for m, g, a in zip(self.members, self.gw, self.aw, strict=True)
        ]
        out = []
        for i in range(len(images)):
            p_female = sum(
                float(w) * preds[i].p_female
                for w, preds in zip(self.gw, per_member, strict=True)
                if preds is not None and w > 0
            )
            age = sum(
                (
                    float(w) * preds[i].age_probs
                    for w, preds in zip(self.aw, per_member, strict=True)
                    if preds is not None and w > 0
                ),
                np.zeros(len(AGE_BIN_YEARS), dtype=np.float32),
            )
            out.append(FacePrediction(p_female, np.asarray(age, dtype=np.float32)))
        return out


def read_image(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return np.asarray(image, dtype=np.uint8)

"""Face landmarks, 5-point alignment and ONNX age/gender inference through ``cv2.dnn``.

Training, evaluation and fine-tuning all go through this one module so that they see faces exactly
the way the edge does (YuNet landmarks -> similarity transform onto the MODELS.md template ->
aligned RGB chip -> NCHW float32, ``(rgb - mean) / 256``). When the edge's own alignment and
classifier modules land, this is the one place to switch over to them.

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

FloatArray = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]

# Normalised 5-point template (right eye, left eye, nose tip, right and left mouth corner, in the
# order YuNet reports them) as fractions of a chip four times the target size (MODELS.md).
TEMPLATE: FloatArray = np.array(
    [[0.3034, 0.2722], [0.6870, 0.2900], [0.4779, 0.5037], [0.3061, 0.6628], [0.6461, 0.6781]],
    dtype=np.float32,
)
# Working at 4x and shrinking with INTER_AREA anti-aliases the chip; it is what the models
# were checked with.
_SUPERSAMPLE = 4

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


def alignment_matrix(points: FloatArray, size: int, margin: float = 0.0) -> FloatArray:
    """2x3 similarity transform from image pixels to an aligned ``size`` chip.

    ``margin`` widens the view around the same face: the face occupies the central
    ``size / (1 + 2 * margin)`` pixels. ``margin=0`` is the MODELS.md chip.
    """
    target = (TEMPLATE + margin) / (1 + 2 * margin) * size
    matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), target, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("landmarks are degenerate: no similarity transform fits them")
    return matrix.astype(np.float32)


def align(image: Image, points: FloatArray, size: int, margin: float = 0.0) -> Image:
    """Warp the face onto the template: a ``size`` x ``size`` chip in the image's channel order."""
    big = size * _SUPERSAMPLE
    matrix = alignment_matrix(points, big, margin)
    chip = cv2.warpAffine(
        image, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return np.asarray(cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def to_blob(chips_bgr: Sequence[Image]) -> FloatArray:
    """Aligned BGR chips -> NCHW float32 RGB, ``(rgb - MEAN_RGB) / 256``."""
    blob = cv2.dnn.blobFromImages(
        list(chips_bgr), scalefactor=SCALE, mean=MEAN_RGB[::-1], swapRB=True
    )
    # blobFromImages subtracts the mean before scaling: (x - mean) * scale, as the models expect.
    return np.asarray(blob, dtype=np.float32)


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


def _run(net: cv2.dnn.Net, blob: FloatArray, outputs: Sequence[str] | None) -> list[FloatArray]:
    net.setInput(blob)
    if outputs is None:
        return [np.asarray(net.forward(), dtype=np.float32)]
    return [np.asarray(o, dtype=np.float32) for o in net.forward(list(outputs))]


def _flip_average(probs: FloatArray, probs_flipped: FloatArray) -> FloatArray:
    return np.asarray((probs + probs_flipped) / 2, dtype=np.float32)


class CydralOnnx:
    """The CC0 Cydral pair: gender on a 32x32 chip, age (81 bins) on a 64x64 chip."""

    def __init__(self, gender_path: Path, age_path: Path, name: str = "cydral") -> None:
        self.name = name
        self.gender_net = cv2.dnn.readNetFromONNX(str(gender_path))
        self.age_net = cv2.dnn.readNetFromONNX(str(age_path))

    def predict(self, image: Image, points: FloatArray) -> FacePrediction:
        return self.predict_batch([image], [points])[0]

    def predict_batch(
        self, images: Sequence[Image], points: Sequence[FloatArray], flip: bool = False
    ) -> list[FacePrediction]:
        g_chips = [align(im, p, 32) for im, p in zip(images, points, strict=True)]
        a_chips = [align(im, p, 64) for im, p in zip(images, points, strict=True)]
        gender = _run(self.gender_net, to_blob(g_chips), None)[0]
        age = _run(self.age_net, to_blob(a_chips), None)[0]
        if flip:
            gender = _flip_average(
                gender, _run(self.gender_net, to_blob(_flipped(g_chips)), None)[0]
            )
            age = _flip_average(age, _run(self.age_net, to_blob(_flipped(a_chips)), None)[0])
        # Output order of the gender model is [female, male].
        return [FacePrediction(float(g[0]), a) for g, a in zip(gender, age, strict=True)]


class DnnAgeGender:
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
        self.name = name
        self.size = size
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.outputs = (gender_output, age_output)

    def predict(self, image: Image, points: FloatArray) -> FacePrediction:
        return self.predict_batch([image], [points])[0]

    def predict_batch(
        self, images: Sequence[Image], points: Sequence[FloatArray], flip: bool = False
    ) -> list[FacePrediction]:
        chips = [align(im, p, self.size) for im, p in zip(images, points, strict=True)]
        return self.predict_chips(chips, flip)

    def predict_chips(self, chips: Sequence[Image], flip: bool = False) -> list[FacePrediction]:
        gender, age = _run(self.net, to_blob(chips), self.outputs)
        if flip:
            gender_f, age_f = _run(self.net, to_blob(_flipped(chips)), self.outputs)
            gender, age = _flip_average(gender, gender_f), _flip_average(age, age_f)
        return [FacePrediction(float(g[0]), a) for g, a in zip(gender, age, strict=True)]


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


def _flipped(chips: Sequence[Image]) -> list[Image]:
    return [np.ascontiguousarray(c[:, ::-1]) for c in chips]


def read_image(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return np.asarray(image, dtype=np.uint8)

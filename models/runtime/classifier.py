"""Gender and age from aligned face chips: the :class:`FaceClassifier` protocol, its ONNX
runtime (the Cydral models, every model exported by the training code, FaceRes and face-api's
AgeGenderNet, through ``cv2.dnn``) and a fake for tests.

Every head is described by data (:class:`OnnxHead`): how its input is fed (:class:`Feed`), which
alignment template it was trained with, and how its output is read (:class:`Decode`). Whatever a
network answers, the classifier turns it into the same thing: gender probabilities [female, male]
and a distribution over the 81 age bins of the Cydral model (0.25, 1, ..., 80 years), so that
heads of different networks can be averaged and calibrated alike.

A classifier takes a batch of aligned chips (see :mod:`models.runtime.alignment`) and returns,
per chip, gender probabilities, an age in years and the probabilities of the 8 age groups.

It lives under ``models/`` so that the edge, the training and the evaluation all run exactly this
code: ``edge_agent`` imports it, and nothing here imports ``edge_agent``.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from footfall.contract import (
    AGE_GROUPS,
    ModelRef,
    ModelRole,
    age_group_for_years,
)
from models.manifest import ModelSpec, load_manifest
from models.runtime.alignment import ALIGNMENT_TEMPLATE, similarity_transform
from models.runtime.gender_calibration import temper_gender
from models.runtime.head_kinds import AGE_DECODES, GENDER_DECODES, Decode, Feed
from models.runtime.opencv import quiet_opencv

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FaceEstimates:
    """Per chip (row): ``gender`` = [p(female), p(male)], ``years``, ``groups`` = probabilities
    of the 8 age groups, youngest first."""

    gender: F64  # (N, 2)
    years: F64  # (N,)
    groups: F64  # (N, 8)

    def __post_init__(self) -> None:
        n = len(self.years)
        if self.gender.shape != (n, 2):
            raise ValueError(f"gender must have shape ({n}, 2), got {self.gender.shape}")
        if self.years.shape != (n,):
            raise ValueError(f"years must have shape ({n},), got {self.years.shape}")
        if self.groups.shape != (n, len(AGE_GROUPS)):
            raise ValueError(f"groups must have shape ({n}, 8), got {self.groups.shape}")

    def __len__(self) -> int:
        return len(self.years)


class FaceClassifier(Protocol):
    @property
    def chip_size(self) -> int:
        """Side of the aligned chips it takes."""
        ...

    @property
    def models(self) -> tuple[ModelRef, ...]:
        """The models behind its estimates, as reported in events."""
        ...

    def classify(self, chips: U8) -> FaceEstimates:
        """Estimates for aligned BGR chips of shape (N, chip_size, chip_size, 3)."""
        ...


# The Cydral age model's 81 bins: 0.25 years, then 1 to 80.
AGE_BIN_YEARS: F64 = np.array([0.25, *range(1, 81)], np.float64)
# (81, 8) one-hot: which age group each bin's age falls into.
_BIN_TO_GROUP: F64 = np.array(
    [[1.0 if age_group_for_years(y) is g else 0.0 for g in AGE_GROUPS] for y in AGE_BIN_YEARS]
)
_CYDRAL_MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)
# FaceRes (Keras MobileNet, "caffe" preprocessing): BGR minus the ImageNet means.
_FACERES_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


# (100, 81): FaceRes bin i (age i + 1) -> the Cydral bin of that age, 80 for the oldest.
_BINS_100_TO_81: F64 = np.zeros((100, len(AGE_BIN_YEARS)))
_BINS_100_TO_81[np.arange(100), np.minimum(np.arange(1, 101), 80)] = 1.0


def years_to_bins(years: npt.ArrayLike, spread: float) -> F64:
    """A point estimate of age -> a distribution over the 81 bins: a discrete Laplace in
    ``log(1 + age)`` around it with scale ``spread``.

    In log age the error of an estimator is about as wide at 5 as at 60 years in relative terms,
    which is how age estimates err (a year at 3, a decade at 60); a constant spread in years
    would smear a toddler over the school-age groups and pull its expected age upwards. The
    ``spread`` is fitted on held-out data (the manifest's ``age_spread``).
    """
    if spread <= 0:
        raise ValueError(f"spread must be > 0, got {spread}")
    mu = np.log1p(np.clip(np.asarray(years, np.float64).reshape(-1, 1), 0.0, None))
    logp = -np.abs(np.log1p(AGE_BIN_YEARS)[None, :] - mu) / spread
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def decode(raw: F64, how: Decode, *, spread: float | None = None) -> F64:
    """Raw outputs (N, k) -> gender [female, male] (N, 2) or age bins (N, 81)."""
    n = raw.shape[0]
    expected = {
        Decode.SOFTMAX_FEMALE_MALE: 2,
        Decode.SOFTMAX_MALE_FEMALE: 2,
        Decode.SIGMOID_MALE: 1,
        Decode.BINS_81: len(AGE_BIN_YEARS),
        Decode.BINS_100: 100,
        Decode.YEARS: 1,
    }[how]
    if raw.shape != (n, expected):
        raise ValueError(f"{how.value} output must have shape ({n}, {expected}), got {raw.shape}")
    if how is Decode.SOFTMAX_FEMALE_MALE:
        out = raw
    elif how is Decode.SOFTMAX_MALE_FEMALE:
        out = raw[:, ::-1]
    elif how is Decode.SIGMOID_MALE:
        p_male = np.clip(raw[:, 0], 0.0, 1.0)
        out = np.stack([1.0 - p_male, p_male], axis=1)
    elif how is Decode.BINS_81:
        out = raw
    elif how is Decode.BINS_100:
        out = raw @ _BINS_100_TO_81
    else:
        if spread is None:
            raise ValueError("a years output needs a spread (the manifest's age_spread)")
        return years_to_bins(raw[:, 0], spread)
    out = np.clip(out, 0.0, None)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def _resized(chips: U8, size: int) -> U8:
    if chips.shape[1] == size:
        return chips
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in chips])


def _cydral_blob(chips: U8, size: int) -> F32:
    """NCHW float32 ``(rgb - mean) / 256`` at ``size``."""
    n = chips.shape[0]
    rgb = _resized(chips, size)[..., ::-1].astype(np.float32)
    blob = (rgb - _CYDRAL_MEAN_RGB) / 256.0
    return np.ascontiguousarray(blob.transpose(0, 3, 1, 2).reshape(n, 3, size, size))


def blob(chips: U8, size: int, feed: Feed) -> F32:
    """The network input for BGR chips, resized (area) to ``size``."""
    if feed is Feed.CYDRAL:
        return _cydral_blob(chips, size)
    small = _resized(chips, size).astype(np.float32)
    if feed is Feed.BGR_MEAN_NHWC:
        return np.ascontiguousarray(small - _FACERES_MEAN_BGR)
    return np.ascontiguousarray(small[..., ::-1].transpose(0, 3, 1, 2))


def realign(chips: U8, template: F32) -> U8:
    """Chips aligned on the edge's template, re-aligned on another one at the same size.

    Both alignments are similarity transforms of the frame, so one chip is a similarity
    transform of the other: a network trained with its own template gets its own geometry
    without the edge aligning every face twice. What falls outside the edge's chip repeats its
    border, as the alignment itself does at the frame edge.
    """
    size = chips.shape[1]
    matrix = similarity_transform(ALIGNMENT_TEMPLATE * size, template * size)
    return np.stack(
        [
            cv2.warpAffine(
                c, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            for c in chips
        ]
    )


@dataclass(frozen=True)
class OnnxHead:
    """One answer of an ONNX network: the file, the side of the chip it takes, the output to
    read (None: the network's only output), how it is fed and read (None: like the Cydral
    models), the alignment template it was trained with (None: the edge's), for an age in
    years the spread of the distribution put around it and, for a gender head, the temperature
    its log-odds are divided by (the manifest's ``gender_temperature``; 1: as the network
    answers)."""

    path: Path
    size: int
    output: str | None = None
    feed: Feed = Feed.CYDRAL
    decode: Decode | None = None
    # Arrays neither compare nor hash: the template is left out of both.
    template: F32 | None = field(default=None, compare=False)
    age_spread: float | None = None
    gender_temperature: float = 1.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.gender_temperature) or self.gender_temperature <= 0:
            raise ValueError(
                f"gender_temperature must be a finite number > 0, got {self.gender_temperature}"
            )
        if self.size < 8:
            raise ValueError(f"size must be at least 8 px, got {self.size}")
        if self.template is not None and np.asarray(self.template).shape != (5, 2):
            raise ValueError(f"template must have shape (5, 2), got {np.shape(self.template)}")
        if self.age_spread is not None and self.age_spread <= 0:
            raise ValueError(f"age_spread must be > 0, got {self.age_spread}")
        if self.decode is Decode.YEARS and self.age_spread is None:
            raise ValueError(f"{self.path.name}: an age in years needs age_spread")

    def decode_for(self, role: ModelRole) -> Decode:
        if self.decode is None:
            return Decode.SOFTMAX_FEMALE_MALE if role is ModelRole.GENDER else Decode.BINS_81
        allowed = GENDER_DECODES if role is ModelRole.GENDER else AGE_DECODES
        if self.decode not in allowed:
            raise ValueError(f"{self.path.name}: {self.decode.value} is not a {role.value} output")
        return self.decode


def head_for(spec: ModelSpec, path: Path) -> OnnxHead:
    """The head a gender or age manifest entry describes, reading the file at ``path``."""
    if spec.input_size is None:
        raise ValueError(f"model {spec.name!r} does not state its input_size in the manifest")
    return OnnxHead(
        path,
        spec.input_size,
        spec.output,
        feed=spec.feed,
        decode=spec.decode,
        template=None if spec.template is None else np.array(spec.template, np.float32),
        age_spread=spec.age_spread,
        gender_temperature=spec.gender_temperature or 1.0,
    )


class OnnxFaceClassifier:
    """A gender head and an age head on ``cv2.dnn``, each read as :class:`OnnxHead` says.

    Serves the CC0 Cydral pair (two files, 32 and 64 px chips), the networks exported by
    ``models.training`` (one file with two outputs), FaceRes and face-api alike. Chips arrive at the largest size the
    heads need and are shrunk with area interpolation for a smaller head - the same alignment at a
    lower resolution, since the template is in fractions of the chip. The gender head's
    ``gender_temperature`` scales its log-odds (calibration, see the model cards), so that every
    gender probability this class hands out is the calibrated one. ``age_temperature`` softens
    the age distribution behind the reported group probabilities (calibration, see the model
    cards); the expected age, and so the group, is computed untempered.
    """

    def __init__(
        self,
        gender: OnnxHead,
        age: OnnxHead,
        *,
        flip_average: bool = False,
        models: tuple[ModelRef, ...],
        age_temperature: float | None = None,
    ) -> None:
        for head in (gender, age):
            if not head.path.is_file():
                raise FileNotFoundError(f"classifier model not found: {head.path}")
        gender.decode_for(ModelRole.GENDER)
        age.decode_for(ModelRole.AGE)
        if age.gender_temperature != 1.0:
            raise ValueError(
                f"{age.path.name}: an age head takes no gender_temperature "
                f"(got {age.gender_temperature})"
            )
        if age_temperature is not None and age_temperature <= 0:
            raise ValueError(f"age_temperature must be > 0, got {age_temperature}")
        quiet_opencv()
        nets: dict[Path, cv2.dnn.Net] = {}
        for head in (gender, age):
            if head.path not in nets:
                nets[head.path] = cv2.dnn.readNetFromONNX(str(head.path))
        self._gender_net, self._age_net = nets[gender.path], nets[age.path]
        self.gender, self.age = gender, age
        self.flip_average = flip_average
        self.age_temperature = age_temperature
        self._models = models

    @property
    def chip_size(self) -> int:
        return max(self.gender.size, self.age.size)

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return self._models

    @staticmethod
    def _forward(net: cv2.dnn.Net, head: OnnxHead, role: ModelRole, chips: U8) -> F64:
        """The head's answer, decoded: (N, 2) gender or (N, 81) age-bin probabilities."""
        if head.template is not None:
            chips = realign(chips, head.template)
        inputs = blob(chips, head.size, head.feed)
        net.setInput(inputs)
        out = net.forward() if head.output is None else net.forward(head.output)
        raw = np.asarray(out, np.float64).reshape(inputs.shape[0], -1)
        return decode(raw, head.decode_for(role), spread=head.age_spread)

    def probabilities(self, chips: U8) -> tuple[F64, F64]:
        """Per chip: gender probabilities [female, male] and the 81 age-bin probabilities, each
        normalised, averaged with the mirrored chip when ``flip_average`` is on. The gender
        probabilities are calibrated by the head's ``gender_temperature``, after the flip
        average, which is what the temperature was fitted on."""
        size = self.chip_size
        if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
            raise ValueError(f"chips must have shape (N, {size}, {size}, 3), got {chips.shape}")
        n = chips.shape[0]
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip_average else chips
        gender = self._forward(self._gender_net, self.gender, ModelRole.GENDER, batch)
        bins = self._forward(self._age_net, self.age, ModelRole.AGE, batch)
        if self.flip_average:
            gender = (gender[:n] + gender[n:]) / 2
            bins = (bins[:n] + bins[n:]) / 2
        gender = temper_gender(gender, self.gender.gender_temperature)
        return gender, bins / bins.sum(axis=1, keepdims=True)

    def classify(self, chips: U8) -> FaceEstimates:
        gender, bins = self.probabilities(chips)
        years = bins @ AGE_BIN_YEARS
        if self.age_temperature is not None:
            tempered = np.power(np.clip(bins, 1e-12, None), 1.0 / self.age_temperature)
            bins = tempered / tempered.sum(axis=1, keepdims=True)
        return FaceEstimates(gender=gender, years=years, groups=bins @ _BIN_TO_GROUP)


CYDRAL_MODELS = (
    ModelRef(role=ModelRole.GENDER, name="cydral-gender", version="1"),
    ModelRef(role=ModelRole.AGE, name="cydral-age", version="1"),
)


def cydral_classifier(
    gender_model: Path,
    age_model: Path,
    *,
    flip_average: bool = False,
    gender_temperature: float | None = None,
) -> OnnxFaceClassifier:
    """The Cydral pair: gender on a 32x32 chip, age on a 64x64 chip; the gender calibrated by
    ``gender_temperature`` (None: the manifest's, as the edge loads it)."""
    if gender_temperature is None:
        gender_temperature = load_manifest().get("cydral-gender").gender_temperature or 1.0
    return OnnxFaceClassifier(
        OnnxHead(gender_model, 32, gender_temperature=gender_temperature),
        OnnxHead(age_model, 64),
        flip_average=flip_average,
        models=CYDRAL_MODELS,
    )


class FakeClassifier:
    """Returns the same estimate for every chip and records what it was given; for tests."""

    def __init__(self, *, p_male: float = 0.9, years: float = 30.0, chip_size: int = 64) -> None:
        self.p_male = p_male
        self.years = years
        self._chip_size = chip_size
        self.batches: list[int] = []

    @property
    def chip_size(self) -> int:
        return self._chip_size

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return (
            ModelRef(role=ModelRole.GENDER, name="fake-gender", version="1"),
            ModelRef(role=ModelRole.AGE, name="fake-age", version="1"),
        )

    def classify(self, chips: U8) -> FaceEstimates:
        n = chips.shape[0]
        self.batches.append(n)
        group = AGE_GROUPS.index(age_group_for_years(self.years))
        groups = np.full((n, len(AGE_GROUPS)), 0.02)
        groups[:, group] = 1.0 - 0.02 * (len(AGE_GROUPS) - 1)
        return FaceEstimates(
            gender=np.tile([1.0 - self.p_male, self.p_male], (n, 1)),
            years=np.full(n, self.years),
            groups=groups,
        )

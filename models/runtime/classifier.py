"""Gender and age from aligned face chips: the :class:`FaceClassifier` protocol, its ONNX
runtime (the Cydral models and every model exported by the training code, through ``cv2.dnn``)
and a fake for tests.

A classifier takes a batch of aligned chips (see :mod:`models.runtime.alignment`) and returns,
per chip, gender probabilities, an age in years and the probabilities of the 8 age groups.

It lives under ``models/`` so that the edge, the training and the evaluation all run exactly this
code: ``edge_agent`` imports it, and nothing here imports ``edge_agent``.
"""

import logging
from dataclasses import dataclass
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


def _cydral_blob(chips: U8, size: int) -> F32:
    """NCHW float32 ``(rgb - mean) / 256`` at ``size``."""
    n = chips.shape[0]
    if chips.shape[1] != size:
        resized = np.stack(
            [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in chips]
        )
    else:
        resized = chips
    rgb = resized[..., ::-1].astype(np.float32)
    blob = (rgb - _CYDRAL_MEAN_RGB) / 256.0
    return np.ascontiguousarray(blob.transpose(0, 3, 1, 2).reshape(n, 3, size, size))


@dataclass(frozen=True)
class OnnxHead:
    """One answer of an ONNX network fed like the Cydral models: the file, the side of the chip
    it takes, and the output to read (None: the network's only output)."""

    path: Path
    size: int
    output: str | None = None


class OnnxFaceClassifier:
    """A gender head (softmax [female, male]) and an age head (81 bins) on ``cv2.dnn``.

    Serves the CC0 Cydral pair (two files, 32 and 64 px chips) and the networks exported by
    ``models.training`` (one file with two outputs) alike. Chips arrive at the largest size the
    heads need and are shrunk with area interpolation for a smaller head - the same alignment at a
    lower resolution, since the template is in fractions of the chip. ``age_temperature``
    softens the age distribution behind the reported group probabilities (calibration, see the
    model cards); the expected age, and so the group, is computed untempered.
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
    def _forward(net: cv2.dnn.Net, head: OnnxHead, chips: U8) -> F64:
        blob = _cydral_blob(chips, head.size)
        net.setInput(blob)
        out = net.forward() if head.output is None else net.forward(head.output)
        return np.asarray(out, np.float64).reshape(blob.shape[0], -1)

    def probabilities(self, chips: U8) -> tuple[F64, F64]:
        """Per chip: gender probabilities [female, male] and the 81 age-bin probabilities, each
        normalised, averaged with the mirrored chip when ``flip_average`` is on."""
        size = self.chip_size
        if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
            raise ValueError(f"chips must have shape (N, {size}, {size}, 3), got {chips.shape}")
        n = chips.shape[0]
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip_average else chips
        gender = self._forward(self._gender_net, self.gender, batch)
        bins = self._forward(self._age_net, self.age, batch)
        if self.flip_average:
            gender = (gender[:n] + gender[n:]) / 2
            bins = (bins[:n] + bins[n:]) / 2
        return gender / gender.sum(axis=1, keepdims=True), bins / bins.sum(axis=1, keepdims=True)

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
    gender_model: Path, age_model: Path, *, flip_average: bool = False
) -> OnnxFaceClassifier:
    """The Cydral pair: gender on a 32x32 chip, age on a 64x64 chip."""
    return OnnxFaceClassifier(
        OnnxHead(gender_model, 32),
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

"""Labelled face folders, splits, and the caches that make training cheap on a CPU.

A dataset is a folder of face images plus labels, either in the file names (UTKFace:
``age_gender_race_date.jpg``, gender 0 = male, 1 = female) or in a CSV with the columns
``file, age, gender`` and optionally ``split`` (train / val / test) -- the format an operator
produces when labelling crops collected at a site.

YuNet runs once per image; the landmarks and a wide aligned "context chip" per face are cached
(keyed by folder and file list), and training samples its jittered face chips from the context
chips, so no image is decoded or detected twice.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from footfall.contract.vocab import AGE_GROUPS, age_group_for_years, age_group_index
from models.faces import align, create_yunet, detect_landmarks, read_image
from models.training import TrainingError

log = logging.getLogger(__name__)

# Context chips: the MODELS.md face chip with a quarter of its size added on every side, so
# random crops, rotations and scale jitter never reach outside real pixels.
CONTEXT_SIZE = 128
CONTEXT_MARGIN = 0.25


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class FaceLabel:
    file: str
    age: float
    female: bool
    split: Split

    @property
    def gender_index(self) -> int:
        """Index in the models' gender output, which is ordered [female, male]."""
        return 0 if self.female else 1

    @property
    def group_index(self) -> int:
        return age_group_index(age_group_for_years(self.age))


T = TypeVar("T")

_UTK_NAME = re.compile(r"^(\d+)_([01])_(\d+)_")
_GENDER_WORDS = {"0": False, "1": True, "male": False, "m": False, "female": True, "f": True}


def _hash_split(file: str, val: float = 0.1, test: float = 0.1) -> Split:
    # Stable across runs and machines (unlike Python's hash()): a file stays in its split.
    bucket = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test:
        return Split.TEST
    if bucket < test + val:
        return Split.VAL
    return Split.TRAIN


def parse_gender(value: str, where: str) -> bool:
    key = value.strip().lower()
    if key not in _GENDER_WORDS:
        raise TrainingError(f"{where}: gender {value!r} is not one of 0/1/male/female (0 = male)")
    return _GENDER_WORDS[key]


def read_labels_csv(path: Path) -> list[FaceLabel]:
    """``file, age, gender[, split]``; gender 0/male or 1/female. Missing splits are hashed."""
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "age", "gender"} - set(reader.fieldnames or [])
        if missing:
            raise TrainingError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                age = float(row["age"])
            except ValueError:
                raise TrainingError(f"{where}: age {row['age']!r} is not a number") from None
            if not 0 <= age <= 120:
                raise TrainingError(f"{where}: age {age} is outside 0..120")
            split_text = (row.get("split") or "").strip()
            try:
                split = Split(split_text) if split_text else _hash_split(row["file"])
            except ValueError:
                raise TrainingError(
                    f"{where}: split {split_text!r} is not train/val/test"
                ) from None
            out.append(FaceLabel(row["file"], age, parse_gender(row["gender"], where), split))
    if not out:
        raise TrainingError(f"{path}: no labelled faces")
    return out


def read_labels_utkface_names(folder: Path) -> list[FaceLabel]:
    out = []
    for path in sorted(folder.iterdir()):
        m = _UTK_NAME.match(path.name)
        if m is None:
            continue
        out.append(
            FaceLabel(path.name, float(m.group(1)), m.group(2) == "1", _hash_split(path.name))
        )
    if not out:
        raise TrainingError(f"{folder}: no file named like UTKFace (age_gender_race_date.jpg)")
    return out


@dataclass(frozen=True)
class FaceFolder:
    """Images in ``images`` with their labels."""

    images: Path
    labels: list[FaceLabel]

    @classmethod
    def open(cls, root: Path, labels_csv: Path | None = None) -> FaceFolder:
        """A folder of images (or a folder with an ``images/`` subfolder) and its labels.

        Labels come from ``labels_csv``, else ``split.csv`` / ``labels.csv`` next to the
        images, else the UTKFace file names.
        """
        images = root / "images" if (root / "images").is_dir() else root
        if not images.is_dir():
            raise TrainingError(f"{root}: not a folder of images")
        if labels_csv is None:
            for candidate in ("split.csv", "labels.csv"):
                if (root / candidate).is_file():
                    labels_csv = root / candidate
                    break
        labels = (
            read_labels_csv(labels_csv)
            if labels_csv is not None
            else read_labels_utkface_names(images)
        )
        return cls(images, labels)

    def split(self, *splits: Split) -> list[FaceLabel]:
        return [lab for lab in self.labels if lab.split in splits]


def subsample(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """At most ``limit`` items, drawn reproducibly, in their order (all when ``limit`` is None)."""
    if limit is None or limit >= len(items):
        return list(items)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(items), size=limit, replace=False))
    return [items[int(i)] for i in keep]


@dataclass
class PreparedFaces:
    """Labels, landmarks and context chips of a list of faces, row-aligned."""

    labels: list[FaceLabel]
    points: npt.NDArray[np.float32]  # (N, 5, 2) landmarks in image pixels
    detected: npt.NDArray[np.bool_]  # False: YuNet missed the face and mean landmarks were used
    chips: npt.NDArray[np.uint8]  # (N, CONTEXT_SIZE, CONTEXT_SIZE, 3) BGR context chips

    def subset(self, index: npt.NDArray[np.intp] | Sequence[int]) -> PreparedFaces:
        idx = np.asarray(index, dtype=np.intp)
        return PreparedFaces(
            [self.labels[i] for i in idx], self.points[idx], self.detected[idx], self.chips[idx]
        )

    def where(self, *splits: Split) -> PreparedFaces:
        return self.subset([i for i, lab in enumerate(self.labels) if lab.split in splits])

    @property
    def ages(self) -> npt.NDArray[np.float32]:
        return np.array([lab.age for lab in self.labels], dtype=np.float32)

    @property
    def gender_index(self) -> npt.NDArray[np.int64]:
        return np.array([lab.gender_index for lab in self.labels], dtype=np.int64)

    @property
    def group_index(self) -> npt.NDArray[np.int64]:
        return np.array([lab.group_index for lab in self.labels], dtype=np.int64)


def _cache_key(images: Path, files: Iterable[str]) -> str:
    digest = hashlib.sha256(str(images.resolve()).encode())
    for name in files:
        digest.update(name.encode() + b"\0")
    # v2: chips come from the edge's own alignment (models.runtime.alignment.align_face).
    digest.update(f"{CONTEXT_SIZE}/{CONTEXT_MARGIN}/v2".encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    from models.assets import default_cache_dir as models_cache

    return models_cache().parent / "faces"


def detect_all(
    images: Path, files: Sequence[str], yunet: Path, progress: bool = False
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """YuNet landmarks for every file; rows where it found no face are NaN."""
    detector = create_yunet(yunet)
    points = np.full((len(files), 5, 2), np.nan, dtype=np.float32)
    sizes = np.zeros((len(files), 2), dtype=np.float32)
    found = np.zeros(len(files), dtype=bool)
    for i, name in enumerate(_progress(files, "landmarks", progress)):
        image = read_image(images / name)
        sizes[i] = image.shape[1], image.shape[0]
        lm = detect_landmarks(image, detector)
        if lm is not None:
            points[i], found[i] = lm.points, True
    return points, found, sizes


def prepare(
    folder: FaceFolder,
    labels: Sequence[FaceLabel],
    yunet: Path,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> PreparedFaces:
    """Landmarks and context chips for ``labels``, from the cache or computed once and cached.

    Faces YuNet misses get the mean landmarks of the faces it found, scaled to the image: the
    crops of a labelled folder are centred on their face, so this is a fair guess, and the
    fraction that needed it is logged and kept (``detected``).
    """
    files = [lab.file for lab in labels]
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"faces-{_cache_key(folder.images, files)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return PreparedFaces(
                list(labels), cached["points"], cached["detected"], cached["chips"]
            )
    points, found, sizes = detect_all(folder.images, files, yunet, progress)
    if not found.any():
        raise TrainingError(f"YuNet found no face in any of the {len(files)} images")
    relative = points[found] / sizes[found][:, None, :]
    mean_relative = relative.mean(axis=0)
    for missed in np.flatnonzero(~found):
        points[missed] = mean_relative * sizes[missed]
    log.info("YuNet found %d of %d faces; the rest use mean landmarks", found.sum(), len(files))
    chips = np.zeros((len(files), CONTEXT_SIZE, CONTEXT_SIZE, 3), dtype=np.uint8)
    for i, name in enumerate(_progress(files, "chips", progress)):
        chips[i] = align(read_image(folder.images / name), points[i], CONTEXT_SIZE, CONTEXT_MARGIN)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, points=points, detected=found, chips=chips)
    tmp.replace(path)
    return PreparedFaces(list(labels), points, found, chips)


def _progress(items: Sequence[str], what: str, enabled: bool) -> Iterable[str]:
    if not enabled:
        return items
    from tqdm import tqdm

    bar: Iterable[str] = tqdm(items, desc=what, unit="img", leave=False)
    return bar


def group_counts(labels: Sequence[FaceLabel]) -> npt.NDArray[np.int64]:
    counts = np.zeros(len(AGE_GROUPS), dtype=np.int64)
    for lab in labels:
        counts[lab.group_index] += 1
    return counts

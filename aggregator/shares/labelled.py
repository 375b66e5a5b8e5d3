"""Posteriors of labelled faces, as the edge would send them, for fitting and testing the share
estimate: a UTKFace split through the edge's alignment and the default classifier.

The first run caches YuNet's landmarks of the whole folder (minutes; models.training.data) and
then the posteriors of each (model, split) as an ``.npz`` beside them, so the fitting and the crowd
experiment do not classify the same faces twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LabelledPosteriors:
    """Row-aligned: each face's gender posterior [female, male], its 8 group probabilities, and
    the true classes."""

    gender: F64  # (N, 2)
    gender_labels: I64  # (N,) 0 female, 1 male
    age: F64  # (N, 8)
    age_labels: I64  # (N,) group index

    def __len__(self) -> int:
        return len(self.gender_labels)

    def subset(self, rows: npt.ArrayLike) -> LabelledPosteriors:
        r = np.asarray(rows, np.intp)
        return LabelledPosteriors(
            self.gender[r], self.gender_labels[r], self.age[r], self.age_labels[r]
        )


def predict_split(
    data: Path,
    split: str,
    model: str,
    *,
    models_dir: Path | None = None,
    cache_dir: Path | None = None,
    flip: bool = True,
    limit: int | None = None,
) -> LabelledPosteriors:
    """Posteriors of ``model`` (a manifest name, e.g. ``cydral``) on ``split`` of the labelled
    face folder ``data`` - at most ``limit`` faces of it, a fixed random subset; cached."""
    from models.assets import ModelResolver
    from models.training.data import FaceFolder, Split, default_cache_dir, prepare
    from models.training.evaluate import load_model, predict_faces

    cache = cache_dir or default_cache_dir()
    resolver = ModelResolver(models_dir=models_dir)
    loaded = load_model(model, resolver)
    # The manifest's calibrations change the posteriors: a new temperature is a new cache entry.
    tag = (
        f"{data.resolve()}|{split}|{model}|{flip}|{limit}|"
        f"{loaded.gender_temperature:g}|{loaded.group_temperature:g}|v3"
    )
    key = hashlib.sha256(tag.encode()).hexdigest()[:16]
    path = cache / f"posteriors-{model}-{split}-{key}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return LabelledPosteriors(
                saved["gender"], saved["gender_labels"], saved["age"], saved["age_labels"]
            )
    folder = FaceFolder.open(data)
    chosen = [lab for lab in folder.labels if lab.split is Split(split)]
    if limit is not None and len(chosen) > limit:
        rows = np.random.default_rng(0).choice(len(chosen), limit, replace=False)
        chosen = [chosen[i] for i in sorted(rows)]
    # Only the split's faces: their landmarks take seconds, the whole folder's minutes.
    faces = prepare(folder, chosen, resolver.resolve("yunet"), cache, False)
    p_female, bins = predict_faces(loaded.model, folder.images, faces, flip)
    gender = np.stack([p_female, 1.0 - p_female], axis=1).astype(np.float64)
    result = LabelledPosteriors(
        gender,
        faces.gender_index,
        _groups(np.asarray(bins, np.float64), loaded.group_temperature),
        faces.group_index,
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        gender=result.gender,
        gender_labels=result.gender_labels,
        age=result.age,
        age_labels=result.age_labels,
    )
    return result


def _groups(bins: F64, temperature: float) -> F64:
    """The 8 group probabilities from the age bins, as the edge's classifier makes them
    (models.runtime.classifier: the manifest's temperature, then each bin to its group)."""
    from footfall.contract import AGE_GROUPS, age_group_for_years
    from models.faces import AGE_BIN_YEARS

    tempered = np.power(np.clip(bins, 1e-12, None), 1.0 / temperature)
    tempered /= tempered.sum(axis=1, keepdims=True)
    to_group = np.array(
        [
            [1.0 if age_group_for_years(float(y)) is g else 0.0 for g in AGE_GROUPS]
            for y in AGE_BIN_YEARS
        ]
    )
    return np.asarray(tempered @ to_group, np.float64)

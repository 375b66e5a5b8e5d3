"""Age/gender benchmark on UTKFace through the edge's own path: YuNet landmarks on the photo,
:func:`models.runtime.alignment.align_face`, the face-quality score and
:func:`models.runtime.classifier.cydral_classifier` + :func:`models.runtime.classifier.combine`.

UTKFace has one photo per person, so the K observations a person gives the pipeline are built
as K views of that photo, the way a face varies while someone walks past a camera: the photo as
is, smaller (the face about 70 px), defocused, rotated by +8 degrees, and rotated by -8 degrees
at two thirds of the light. Conditions compared:

- ``original``: the photo alone;
- ``best of K``: the one view the pipeline's quality score ranks highest;
- ``K average``: all K views, their gender log-odds averaged with the log-odds of each view's
  expected accuracy as weight (what the pipeline does);

each with and without horizontal-flip averaging in the classifier. The age group is reported
both ways: from the expected age (the pipeline's rule) and as the most likely group.

Reporting is on the ``test`` split; choose settings on ``val``.
"""

import csv
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.classification import combine
from edge_agent.vision.detection import YuNetDetector
from edge_agent.vision.quality import (
    QualityParams,
    default_accuracy_model,
    evidence_weight,
    expected_accuracy,
    geometry_quality,
    pixel_quality,
)
from footfall.contract import AGE_GROUPS, Gender, age_group_for_years
from footfall.contract.vocab import age_group_index
from models.runtime.alignment import align_face
from models.runtime.classifier import FaceEstimates, OnnxFaceClassifier

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

VIEW_NAMES = ("photo", "small", "defocus", "rotate+8", "rotate-8 dim")
SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)


def _rotate(image: U8, degrees: float) -> U8:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE), np.uint8)


def views(photo: U8) -> list[U8]:
    """The K = 5 views of one photo (see the module docstring), each on a 200x200 canvas."""
    h, w = photo.shape[:2]
    small = cv2.resize(photo, (w * 7 // 20, h * 7 // 20), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(photo, int(photo.mean()))
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    dim = _rotate(photo, -8.0).astype(np.float32) * (2 / 3)
    return [
        photo,
        canvas,
        np.asarray(cv2.GaussianBlur(photo, (0, 0), 2.0), np.uint8),
        _rotate(photo, 8.0),
        np.clip(dim, 0, 255).astype(np.uint8),
    ]


@dataclass
class Person:
    file: str
    age: int
    gender: Gender
    quality: F64  # (K,) expected accuracy, 0 where no face was found in the view
    chips: U8  # (K, 64, 64, 3)


def prepare(
    utkface_dir: Path,
    detector: YuNetDetector,
    chip_size: int,
    *,
    split: str = "test",
    limit: int | None = None,
    params: QualityParams | None = None,
) -> list[Person]:
    """Detect, align and score every view of every face of the split (the expensive part,
    shared by all conditions)."""
    params = params or QualityParams()
    accuracy = default_accuracy_model()
    rows = []
    with (utkface_dir / "split.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split]
    rows.sort(key=lambda r: r["file"])
    if limit is not None:
        # An even slice over the sorted files, not the first N (which share an age prefix).
        picks = np.unique(np.linspace(0, len(rows) - 1, min(limit, len(rows))).astype(int))
        rows = [rows[i] for i in picks.tolist()]
    people = []
    for row in rows:
        photo = cv2.imread(str(utkface_dir / "images" / row["file"]))
        if photo is None:
            raise FileNotFoundError(f"cannot read {row['file']}")
        chips = np.zeros((len(VIEW_NAMES), chip_size, chip_size, 3), np.uint8)
        quality = np.zeros(len(VIEW_NAMES))
        for k, view in enumerate(views(np.asarray(photo, np.uint8))):
            det = detector.detect(view)
            if len(det) == 0:
                continue
            i = int(np.argmax(det.scores))
            chip = align_face(view, det.landmarks[i], chip_size)
            h, w = view.shape[:2]
            geometry = geometry_quality(
                det.boxes[i], det.landmarks[i], float(det.scores[i]), w, h, params
            )
            chips[k] = chip
            # At least chance (0.5): a found face never scores 0, so it still counts as found.
            quality[k] = expected_accuracy(geometry, pixel_quality(chip, params), accuracy, params)
        people.append(
            Person(
                row["file"],
                int(row["age"]),
                Gender.MALE if row["gender"] == "0" else Gender.FEMALE,
                quality,
                chips,
            )
        )
    return people


@dataclass
class Prediction:
    p_male: float
    years: float
    groups: F64  # (8,)


Selector = Callable[[Person], list[int]]


def select_original(p: Person) -> list[int]:
    return [0] if p.quality[0] > 0 else []


def select_best(p: Person) -> list[int]:
    return [int(np.argmax(p.quality))] if p.quality.max() > 0 else []


def select_all(p: Person) -> list[int]:
    return [k for k in range(len(p.quality)) if p.quality[k] > 0]


CONDITIONS: dict[str, Selector] = {
    "original": select_original,
    "best of K": select_best,
    "K average": select_all,
}


@dataclass
class GroupRow:
    group: str
    n: int
    exact: float | None
    one_off: float | None


@dataclass
class AgeGenderScore:
    condition: str
    flip: bool
    people: int
    no_face: int  # people for whom no view had a face found (reported, not scored)
    gender_accuracy: float  # argmax, over people with a face
    gender_unknown_share: float  # below the pipeline's min_gender_confidence
    gender_accuracy_known: float  # over the rest
    age_exact: float  # group of the expected age (the pipeline's rule)
    age_one_off: float
    age_exact_argmax: float  # most likely group
    age_one_off_argmax: float
    age_mae: float
    per_group: list[GroupRow] = field(default_factory=list)
    per_gender: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)  # true group rows, predicted cols
    # (min_gender_confidence, share reported unknown, accuracy of the rest): the trade-off an
    # operator chooses from (on the val split).
    gender_sweep: list[tuple[float, float, float]] = field(default_factory=list)


def _predict(
    estimates: FaceEstimates, weights: F64, min_gender_confidence: float
) -> tuple[Prediction, bool]:
    evidence = np.array([evidence_weight(float(q)) for q in weights])
    if evidence.sum() <= 0:
        evidence = np.ones(len(weights))
    gender, age = combine(estimates, evidence, min_gender_confidence=min_gender_confidence)
    w = evidence / evidence.sum()
    logit = w @ (np.log(estimates.gender[:, 1] + 1e-9) - np.log(estimates.gender[:, 0] + 1e-9))
    p = np.array([1.0, float(np.exp(logit))])
    groups = (
        np.array([age.group_probabilities[g] for g in AGE_GROUPS])
        if age.group_probabilities
        else np.zeros(8)
    )
    return (
        Prediction(float(p[1] / p.sum()), float(age.years or 0.0), groups),
        gender.label is Gender.UNKNOWN,
    )


def score(
    people: list[Person],
    classifier: OnnxFaceClassifier,
    *,
    min_gender_confidence: float = 0.6,
) -> list[AgeGenderScore]:
    out = []
    for flip in (False, True):
        classifier.flip_average = flip
        all_estimates = [classifier.classify(p.chips) for p in people]
        for name, select in CONDITIONS.items():
            out.append(
                _score_condition(name, flip, people, all_estimates, select, min_gender_confidence)
            )
    return out


def _score_condition(
    name: str,
    flip: bool,
    people: list[Person],
    estimates: list[FaceEstimates],
    select: Selector,
    min_gender_confidence: float,
) -> AgeGenderScore:
    n = len(AGE_GROUPS)
    confusion = np.zeros((n, n), int)
    conf_argmax = np.zeros((n, n), int)
    gender_ok = unknown = known_ok = 0
    abs_err = []
    by_gender: dict[str, list[tuple[bool, bool]]] = {"male": [], "female": []}
    sure: list[tuple[float, bool]] = []  # (confidence, right) per person
    scored = 0
    for person, est in zip(people, estimates, strict=True):
        chosen = select(person)
        if not chosen:
            continue
        scored += 1
        sub = FaceEstimates(est.gender[chosen], est.years[chosen], est.groups[chosen])
        pred, is_unknown = _predict(sub, person.quality[chosen], min_gender_confidence)
        said = Gender.MALE if pred.p_male >= 0.5 else Gender.FEMALE
        right = said is person.gender
        gender_ok += right
        sure.append((max(pred.p_male, 1 - pred.p_male), right))
        unknown += is_unknown
        known_ok += right and not is_unknown
        truth = age_group_index(age_group_for_years(person.age))
        guess = age_group_index(age_group_for_years(pred.years))
        confusion[truth, guess] += 1
        conf_argmax[truth, int(np.argmax(pred.groups))] += 1
        abs_err.append(abs(pred.years - person.age))
        by_gender[person.gender.value].append((right, truth == guess))

    def exact(c: npt.NDArray[np.int_]) -> float:
        return float(np.trace(c) / max(c.sum(), 1))

    def one_off(c: npt.NDArray[np.int_]) -> float:
        idx = np.arange(n)
        near = np.abs(idx[:, None] - idx[None, :]) <= 1
        return float(c[near].sum() / max(c.sum(), 1))

    per_group = []
    for i, g in enumerate(AGE_GROUPS):
        row = confusion[i]
        total = int(row.sum())
        per_group.append(
            GroupRow(
                g.value,
                total,
                round(float(row[i] / total), 4) if total else None,
                round(float(row[max(0, i - 1) : i + 2].sum() / total), 4) if total else None,
            )
        )
    per_gender = {
        g: {
            "n": float(len(v)),
            "gender_accuracy": round(sum(r for r, _ in v) / len(v), 4) if v else math.nan,
            "age_exact": round(sum(a for _, a in v) / len(v), 4) if v else math.nan,
        }
        for g, v in by_gender.items()
    }
    known = scored - unknown
    sweep = []
    for threshold in SWEEP:
        kept = [r for c, r in sure if c >= threshold]
        sweep.append(
            (
                threshold,
                round(1 - len(kept) / max(len(sure), 1), 4),
                round(sum(kept) / max(len(kept), 1), 4),
            )
        )
    return AgeGenderScore(
        condition=name,
        flip=flip,
        people=len(people),
        no_face=len(people) - scored,
        gender_accuracy=round(gender_ok / max(scored, 1), 4),
        gender_unknown_share=round(unknown / max(scored, 1), 4),
        gender_accuracy_known=round(known_ok / max(known, 1), 4),
        age_exact=round(exact(confusion), 4),
        age_one_off=round(one_off(confusion), 4),
        age_exact_argmax=round(exact(conf_argmax), 4),
        age_one_off_argmax=round(one_off(conf_argmax), 4),
        age_mae=round(float(np.mean(abs_err)) if abs_err else math.nan, 2),
        per_group=per_group,
        per_gender=per_gender,
        confusion=confusion.tolist(),
        gender_sweep=sweep,
    )


def markdown(scores: list[AgeGenderScore], note: str) -> str:
    lines = [
        "# Age and gender on UTKFace",
        "",
        note,
        "",
        "| condition | flip | people | no face | gender % | gender unknown % | gender % (known) "
        "| age exact % | age 1-off % | age exact % (argmax) | age 1-off % (argmax) | age MAE y |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.condition} | {'yes' if s.flip else 'no'} | {s.people} | {s.no_face} "
            f"| {100 * s.gender_accuracy:.1f} | {100 * s.gender_unknown_share:.1f} "
            f"| {100 * s.gender_accuracy_known:.1f} | {100 * s.age_exact:.1f} "
            f"| {100 * s.age_one_off:.1f} | {100 * s.age_exact_argmax:.1f} "
            f"| {100 * s.age_one_off_argmax:.1f} | {s.age_mae:.1f} |"
        )
    ref = next((s for s in scores if s.condition == "K average" and not s.flip), scores[0])
    lines += [
        "",
        f"## Per age group and per gender ({ref.condition}, flip {'on' if ref.flip else 'off'})",
        "",
        "| group | people | exact % | 1-off % |",
        "|---|---:|---:|---:|",
    ]
    for row in ref.per_group:
        e = "-" if row.exact is None else f"{100 * row.exact:.1f}"
        o = "-" if row.one_off is None else f"{100 * row.one_off:.1f}"
        lines.append(f"| {row.group} | {row.n} | {e} | {o} |")
    lines += ["", "| gender | people | gender % | age exact % |", "|---|---:|---:|---:|"]
    for gender, v in ref.per_gender.items():
        lines.append(
            f"| {gender} | {int(v['n'])} | {100 * v['gender_accuracy']:.1f} | {100 * v['age_exact']:.1f} |"
        )
    lines += [
        "",
        "Gender: share reported unknown and accuracy of the rest, by min_gender_confidence",
        "",
        "| min_gender_confidence | unknown % | accuracy of the rest % |",
        "|---:|---:|---:|",
    ]
    for threshold, unknown_share, accuracy in ref.gender_sweep:
        lines.append(f"| {threshold} | {100 * unknown_share:.1f} | {100 * accuracy:.1f} |")
    header = " | ".join(g.value for g in AGE_GROUPS)
    lines += [
        "",
        "Confusion matrix (rows: true group, columns: predicted group from the expected age)",
        "",
        f"| true \\ predicted | {header} |",
        "|---" * (len(AGE_GROUPS) + 1) + "|",
    ]
    for group, counts in zip(AGE_GROUPS, ref.confusion, strict=True):
        lines.append(f"| {group.value} | " + " | ".join(str(v) for v in counts) + " |")
    return "\n".join(lines) + "\n"


def to_json(scores: list[AgeGenderScore], meta: dict[str, object]) -> str:
    return json.dumps({"meta": meta, "scores": [asdict(s) for s in scores]}, indent=2)


__all__ = [
    "CONDITIONS",
    "VIEW_NAMES",
    "AgeGenderScore",
    "Person",
    "markdown",
    "prepare",
    "score",
    "to_json",
    "views",
]

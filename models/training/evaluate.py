"""Evaluation of an age/gender model the way the edge runs it, on a held-out split.

Each face goes through the edge's path: cached YuNet landmarks -> the edge's 5-point alignment ->
the edge's classifier (``cv2.dnn``), with the heads, input sizes and outputs the manifest gives, as
``edge_agent.build`` wires them. Accuracy is computed over batches (same numbers, faster); the time per
face is measured separately, one face at a time on one thread, alignment included, as the edge
classifies faces. Both single crop and flip averaging are reported.

Needs only the ``edge`` extra (OpenCV): no PyTorch.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.assets import ModelResolver
from models.faces import DnnAgeGender, EdgeClassifierModel, Ensemble, FaceModel, read_image
from models.manifest import ModelSpec
from models.runtime.classifier import head_for
from models.training import TrainingError
from models.training.data import PreparedFaces
from models.training.metrics import full_report

log = logging.getLogger(__name__)

CYDRAL = "cydral"
DEFAULT = "default"
"""The gender and age models the edge loads when its configuration names none."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate, with what the card needs to say about it."""

    name: str
    model: FaceModel
    licence: str
    commercial_use: bool
    training_data: str
    description: str
    files: tuple[str, ...]
    group_temperature: float = 1.0
    gender_temperature: float = 1.0
    """The temperature its model already applies to the gender log-odds (manifest)."""
    heads: tuple[str, ...] = ()
    """Manifest names of the gender and age models behind it (none for an .onnx path)."""


def _pair_names(name: str) -> tuple[str, str]:
    return f"{name}-gender", f"{name}-age"


def load_model(name: str, resolver: ModelResolver, *, calibrated: bool = True) -> LoadedModel:
    """``default`` (exactly the models the edge loads by default), ``cydral``, the prefix of a
    ``<name>-gender`` / ``<name>-age`` manifest pair, or a path to an exported ``.onnx`` (its
    ``.export.json`` says the chip size). ``calibrated=False`` leaves out the manifest's gender
    temperature (to fit a new one on what the network itself answers)."""
    if name == DEFAULT:
        # The edge's own defaults (the ones ClassifierSettings falls back to), not a copy.
        from models.selection import DEFAULT_AGE_MODEL, DEFAULT_GENDER_MODEL

        return load_heads(
            DEFAULT, DEFAULT_GENDER_MODEL, DEFAULT_AGE_MODEL, resolver, calibrated=calibrated
        )
    path = Path(name)
    if path.suffix == ".onnx":
        meta_path = path.with_suffix(".export.json")
        if not meta_path.is_file():
            raise TrainingError(f"{path}: no {meta_path.name} next to it (written by the export)")
        meta = json.loads(meta_path.read_text())
        return LoadedModel(
            name=path.stem,
            model=DnnAgeGender(path, int(meta["chip"]), path.stem),
            # A local export carries no licence of its own: it is treated as non-commercial
            # until it is listed in the manifest with what it was trained on.
            licence="not in the manifest: assume the terms of its training data",
            commercial_use=False,
            training_data="not stated",
            description=f"{meta['arch']} net exported from a local checkpoint",
            files=(str(path),),
        )
    gender_name, age_name = _pair_names(name)
    return load_heads(name, gender_name, age_name, resolver, calibrated=calibrated)


def load_heads(
    name: str,
    gender_name: str,
    age_name: str,
    resolver: ModelResolver,
    *,
    calibrated: bool = True,
) -> LoadedModel:
    """A gender and an age manifest entry, wired as ``edge_agent.build`` wires them (without
    the gender temperature when ``calibrated`` is false)."""
    try:
        g_spec, a_spec = resolver.manifest.get(gender_name), resolver.manifest.get(age_name)
    except KeyError as exc:
        raise TrainingError(str(exc.args[0])) from None
    try:
        # The heads exactly as edge_agent.build wires them for the agent.
        g_head = head_for(g_spec, resolver.resolve(gender_name))
        a_head = head_for(a_spec, resolver.resolve(age_name))
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if not calibrated:
        g_head = replace(g_head, gender_temperature=1.0)
    model: FaceModel = EdgeClassifierModel(g_head, a_head, name)
    return LoadedModel(
        name=name,
        model=model,
        licence=_joint(g_spec.licence, a_spec.licence),
        commercial_use=g_spec.commercial_use and a_spec.commercial_use,
        training_data=_joint(g_spec.training_data or "unknown", a_spec.training_data or "unknown"),
        description=_joint(g_spec.description, a_spec.description),
        files=tuple(dict.fromkeys((g_spec.file, a_spec.file))),
        group_temperature=a_spec.confidence_temperature or 1.0,
        gender_temperature=g_head.gender_temperature,
        heads=(gender_name, age_name),
    )


def _joint(a: str, b: str) -> str:
    return a if a == b else f"gender: {a}; age: {b}"


def ensemble(
    name: str,
    members: Sequence[LoadedModel],
    gender_weights: Sequence[float],
    age_weights: Sequence[float],
) -> LoadedModel:
    """Weighted average of the members' probabilities; it inherits the strictest licence."""
    used = [
        m for m, g, a in zip(members, gender_weights, age_weights, strict=True) if g > 0 or a > 0
    ]
    parts = ", ".join(
        f"{m.name} (gender {g:g}, age {a:g})"
        for m, g, a in zip(members, gender_weights, age_weights, strict=True)
    )
    return LoadedModel(
        name=name,
        model=Ensemble(name, [m.model for m in members], gender_weights, age_weights),
        licence="; ".join(dict.fromkeys(m.licence for m in used)),
        commercial_use=all(m.commercial_use for m in used),
        training_data="; ".join(dict.fromkeys(m.training_data for m in used)),
        description=f"Average of the probabilities of {parts}",
        files=tuple(dict.fromkeys(f for m in used for f in m.files)),
        heads=tuple(dict.fromkeys(h for m in used for h in m.heads)),
    )


def predict_faces(
    model: FaceModel,
    images_dir: Path,
    faces: PreparedFaces,
    flip: bool,
    batch_size: int = 64,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    p_female, age_probs = [], []
    for start in range(0, len(faces.labels), batch_size):
        labels = faces.labels[start : start + batch_size]
        images = [read_image(images_dir / lab.file) for lab in labels]
        points = list(faces.points[start : start + batch_size])
        for pred in model.predict_batch(images, points, flip):
            p_female.append(pred.p_female)
            age_probs.append(pred.age_probs)
    return np.array(p_female, dtype=np.float64), np.stack(age_probs).astype(np.float32)


def time_per_face(
    model: FaceModel, images_dir: Path, faces: PreparedFaces, flip: bool, n: int, repeats: int = 3
) -> float:
    """Milliseconds to align and classify one face on one thread: the median over faces of the
    fastest of ``repeats`` runs, so that other work on a shared machine inflates it less."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        step = max(1, len(faces.labels) // max(1, n))
        picks = list(range(0, len(faces.labels), step))[:n]
        images = [read_image(images_dir / faces.labels[i].file) for i in picks]
        model.predict_batch(images[:1], [faces.points[picks[0]]], flip)  # warm-up
        times = []
        for image, i in zip(images, picks, strict=True):
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.predict_batch([image], [faces.points[i]], flip)
                best = min(best, (time.perf_counter() - t0) * 1000)
            times.append(best)
        return float(np.median(times))
    finally:
        cv2.setNumThreads(previous)


def evaluate(
    loaded: LoadedModel,
    images_dir: Path,
    faces: PreparedFaces,
    split_name: str,
    timing_faces: int = 200,
) -> dict[str, Any]:
    """The evaluation record the model card is written from."""
    female = faces.gender_index == 0
    ages = faces.ages
    result: dict[str, Any] = {
        "model": loaded.name,
        "description": loaded.description,
        "licence": loaded.licence,
        "commercial_use": loaded.commercial_use,
        "training_data": loaded.training_data,
        "files": list(loaded.files),
        "split": split_name,
        "faces": len(faces.labels),
        "yunet_detected": float(faces.detected.mean()),
        "evaluated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "modes": {},
    }
    for mode, flip in (("single", False), ("flip", True)):
        t0 = time.monotonic()
        p_female, age_probs = predict_faces(loaded.model, images_dir, faces, flip)
        report = full_report(
            p_female,
            age_probs,
            ages,
            female,
            loaded.group_temperature,
            loaded.gender_temperature,
        )
        if timing_faces > 0:
            report["ms_per_face_1_thread"] = time_per_face(
                loaded.model, images_dir, faces, flip, timing_faces
            )
        result["modes"][mode] = report
        o = report["overall"]
        log.info(
            "%s %s: gender %.3f, group %.3f, 1-off %.3f, MAE %.2f (%.0f s)",
            loaded.name,
            mode,
            o["gender_acc"],
            o["group_exact"],
            o["group_one_off"],
            o["mae"],
            time.monotonic() - t0,
        )
    return result


def add_timing(
    result: dict[str, Any],
    loaded: LoadedModel,
    images_dir: Path,
    faces: PreparedFaces,
    timing_faces: int = 200,
) -> dict[str, Any]:
    """Measure (again) the time per face of an existing result, e.g. once no training runs."""
    for mode, report in result["modes"].items():
        report["ms_per_face_1_thread"] = time_per_face(
            loaded.model, images_dir, faces, mode == "flip", timing_faces
        )
    return result


def spec_summary(spec: ModelSpec) -> str:
    return f"{spec.name} ({spec.licence}, commercial use {'yes' if spec.commercial_use else 'no'})"

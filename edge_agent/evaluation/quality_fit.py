"""Fit how the gender classifier's accuracy falls with a face's size, pose, sharpness, contrast
and detector score, for :func:`edge_agent.vision.quality.expected_accuracy`:

    python -m edge_agent.evaluation.quality_fit --data ../shared/data/utkface \\
        --models ../shared/models --out edge_agent/vision/quality_fit.json \\
        --report edge_agent/evaluation/results/quality_fit.md

Faces: UTKFace's *val* split (never *test*). Each face is spoiled ``--variants`` times the way a
camera spoils it: shrunk to a face height drawn log-uniformly from 12-112 px, then either the
training code's stand-in camera (:func:`models.training.site.degrade`) or an independent draw of
defocus, sensor noise, JPEG, darkening and lower contrast; every variant is also rolled by up to
15 degrees. Yaw is not synthesised (an image warp cannot turn a head): it is the natural spread
of UTKFace's poses, measured from the landmarks like every other feature. Each variant goes
through the edge's own path: YuNet on the spoiled image, the geometry and pixel measurements of
:mod:`edge_agent.vision.quality`, :func:`models.runtime.alignment.align_face` and the configured
classifier; whether its gender is right is the outcome of a logistic regression (Newton/IRLS,
small L2) on the bounded features. Faces are split by name into a fitting part (70 %) and a check
part (30 %) on which the calibration and the judged share / accuracy per threshold are reported.
"""

import argparse
import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.build import build_classifier, build_detector
from edge_agent.vision.quality import (
    _BOUNDS,
    FEATURES,
    AccuracyModel,
    QualityParams,
    features,
    geometry_quality,
    pixel_quality,
)
from edge_agent.vision.settings import ClassifierSettings, DetectorSettings
from models.assets import ModelResolver
from models.runtime.alignment import align_face
from models.training.site import CameraProfile, degrade

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]


@dataclass
class Samples:
    """One row per detected variant: bounded features, whether the gender was right, the
    probability given to the top gender, the ramp quality the pipeline used before, and whether
    the face belongs to the check part."""

    x: F64  # (N, len(FEATURES))
    correct: npt.NDArray[np.bool_]
    confidence: F64
    ramp_quality: F64
    check: npt.NDArray[np.bool_]
    missed: int  # variants YuNet found no face in (the edge would never see them)


def _bounded(values: dict[str, float]) -> list[float]:
    return [min(_BOUNDS[f][1], max(_BOUNDS[f][0], values[f])) for f in FEATURES]


def spoil(photo: U8, face_px: float, target_px: float, rng: np.random.Generator) -> U8:
    """``photo`` with its face (``face_px`` tall) made ``target_px`` tall and degraded."""
    h, w = photo.shape[:2]
    angle = float(rng.uniform(-15, 15))
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    photo = np.asarray(cv2.warpAffine(photo, rot, (w, h), borderMode=cv2.BORDER_REFLECT), np.uint8)
    if rng.random() < 0.3:
        # The training code's stand-in camera: its face_px is the face's width, ~0.6 of the crop.
        side_face = target_px * w / face_px * 0.6
        return degrade(photo, CameraProfile(face_px=(side_face, side_face)), rng)
    x = photo.astype(np.float32)
    if rng.random() < 0.3:  # a dark scene, sometimes also washed out
        x = x * float(rng.uniform(0.12, 0.6))
    if rng.random() < 0.3:
        x = (x - x.mean()) * float(rng.uniform(0.4, 0.9)) + x.mean()
    scale = target_px / face_px
    side = (max(8, round(w * scale)), max(8, round(h * scale)))
    sigma = float(rng.uniform(0.0, 1.6)) if rng.random() < 0.5 else 0.0
    if sigma > 0.2:  # defocus, in pixels of the small image
        x = np.asarray(cv2.GaussianBlur(x, (0, 0), sigma / scale), np.float32)
    x = np.asarray(cv2.resize(x, side, interpolation=cv2.INTER_AREA), np.float32)
    x = x + rng.normal(0, float(rng.uniform(0, 6)), x.shape).astype(np.float32)
    small = np.clip(x, 0, 255).astype(np.uint8)
    quality = int(rng.integers(30, 96))
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


def _on_canvas(image: U8) -> U8:
    """The spoiled face in the middle of a plain frame, so it is not cut by the image border
    and YuNet sees it at its own resolution (the canvas is below the detector's input width)."""
    h, w = image.shape[:2]
    side = max(160, max(h, w) + 64)
    canvas = np.full((side, side, 3), image.reshape(-1, 3).mean(axis=0), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = image
    return canvas


def _is_check(name: str) -> bool:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10 < 3


def collect(
    data: Path, resolver: ModelResolver, variants: int, limit: int | None, seed: int
) -> Samples:
    detector = build_detector(DetectorSettings(), resolver)
    classifier = build_classifier(ClassifierSettings(), resolver)
    params = QualityParams()
    with (data / "split.csv").open(newline="", encoding="utf-8") as handle:
        rows = sorted(
            (r for r in csv.DictReader(handle) if r["split"] == "val"), key=lambda r: r["file"]
        )
    if limit is not None:
        picks = np.unique(np.linspace(0, len(rows) - 1, min(limit, len(rows))).astype(int))
        rows = [rows[i] for i in picks.tolist()]
    rng = np.random.default_rng(seed)
    x, labels, ramp, check, chips = [], [], [], [], []
    missed = 0
    for row in rows:
        photo = np.asarray(cv2.imread(str(data / "images" / row["file"])), np.uint8)
        det = detector.detect(photo)
        if len(det) == 0:
            continue
        i0 = int(np.argmax(det.scores))
        face_px = float(det.boxes[i0, 3] - det.boxes[i0, 1])
        for _ in range(variants):
            target = float(np.exp(rng.uniform(math.log(12), math.log(112))))
            frame = _on_canvas(spoil(photo, face_px, target, rng))
            det = detector.detect(frame)
            if len(det) == 0:
                missed += 1
                continue
            i = int(np.argmax(det.scores))
            h, w = frame.shape[:2]
            box, lm, score = det.boxes[i], det.landmarks[i], float(det.scores[i])
            geometry = geometry_quality(box, lm, score, w, h, params)
            if geometry.implausible or geometry.pose is None:
                missed += 1
                continue
            chip = align_face(frame, lm, classifier.chip_size)
            pixel = pixel_quality(chip, params)
            x.append(_bounded(features(geometry, pixel)))
            ramp.append(geometry.total * pixel.total)
            labels.append(1 if row["gender"] == "0" else 0)  # UTKFace: 0 male, 1 female
            check.append(_is_check(row["file"]))
            chips.append(chip)
    correct, confidence = [], []
    for start in range(0, len(chips), 64):
        est = classifier.classify(np.stack(chips[start : start + 64]))
        male = est.gender[:, 1] > est.gender[:, 0]
        correct += (male == (np.array(labels[start : start + 64]) == 1)).tolist()
        confidence += est.gender.max(axis=1).tolist()
    return Samples(
        np.array(x, np.float64),
        np.array(correct, bool),
        np.array(confidence, np.float64),
        np.array(ramp, np.float64),
        np.array(check, bool),
        missed,
    )


def fit_logistic(
    x: F64, y: npt.NDArray[np.bool_], l2: float = 1e-3, iterations: int = 50
) -> tuple[float, F64]:
    """Intercept and weights maximising the L2-penalised (not on the intercept) likelihood of
    ``y`` under sigmoid(b + x w), by Newton's method (IRLS)."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many outcomes as rows, got {len(y)} for {len(x)}")
    a = np.hstack([np.ones((len(x), 1)), x])
    theta = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2 * len(x))
    penalty[0] = 0.0
    t = y.astype(np.float64)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a @ theta)))
        grad = a.T @ (p - t) + penalty * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(theta)), grad)
        theta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return float(theta[0]), theta[1:]


def support(x: F64, share: float = 0.01) -> dict[str, tuple[float, float]]:
    """Per feature, the range holding all but ``share`` of ``x``'s rows at each end: what the
    fit may be believed on (:meth:`AccuracyModel.coverage`)."""
    low, high = np.quantile(x, [share, 1.0 - share], axis=0)
    return {
        f: (round(float(lo), 4), round(float(hi), 4))
        for f, lo, hi in zip(FEATURES, low, high, strict=True)
    }


def predict(model: AccuracyModel, x: F64, *, faded: bool = True) -> F64:
    """Expected accuracy of each row of ``x``; ``faded``: with the log-odds above chance
    scaled by :meth:`AccuracyModel.coverage`, as the pipeline does (the size and border fades,
    which need the face's pixels and frame, are left out)."""
    w = np.array([model.weights[f] for f in FEATURES])
    z = model.intercept + x @ w
    if faded:
        fade = np.array([model.coverage(dict(zip(FEATURES, row, strict=True))) for row in x])
        z = np.maximum(z, 0.0) * fade
    out: F64 = 1.0 / (1.0 + np.exp(-z))
    return out


def report(model: AccuracyModel, s: Samples, command: str) -> str:
    c = s.check
    p = predict(model, s.x[c])
    right = s.correct[c]
    lines = [
        "# Expected accuracy of one face observation (gender)",
        "",
        f"Command: `{command}`",
        "",
        f"Variants detected: {len(s.correct)} ({int((~c).sum())} fitting, {int(c.sum())} "
        f"check); not detected or implausible landmarks: {s.missed}. Gender right on "
        f"{100 * s.correct.mean():.1f} % of all.",
        "",
        "Coefficients (bounded features, see edge_agent/vision/quality.py):",
        "",
        "| feature | weight |",
        "|---|---|",
        f"| intercept | {model.intercept:+.3f} |",
        *[f"| {f} | {model.weights[f]:+.3f} |" for f in FEATURES],
        "",
        "Calibration on the check faces, by decile of the expected accuracy:",
        "",
        "| decile | faces | expected % | actual % |",
        "|---|---|---|---|",
    ]
    order = np.argsort(p)
    for k, idx in enumerate(np.array_split(order, 10)):
        lines.append(
            f"| {k + 1} | {len(idx)} | {100 * p[idx].mean():.1f} | {100 * right[idx].mean():.1f} |"
        )
    fit = ~c
    p_raw, p_fit = predict(model, s.x[fit], faded=False), predict(model, s.x[fit])
    out_fit = p_fit < p_raw
    lines += [
        "",
        "Support: per feature, the 1st-99th percentile of the fitting faces. Beyond it, on the "
        "unfavourable side, expected accuracy fades to chance at the feature's bound "
        "(`AccuracyModel.coverage`). The fitting faces beyond the support of at least one "
        "feature, and the rest:",
        "",
        "| fitting faces | faces | fitted % | faded % | actual % |",
        "|---|---|---|---|---|",
    ]
    for name, rows in (("beyond the support", out_fit), ("inside", ~out_fit)):
        lines.append(
            f"| {name} | {int(rows.sum())} | {100 * p_raw[rows].mean():.1f} | "
            f"{100 * p_fit[rows].mean():.1f} | {100 * s.correct[fit][rows].mean():.1f} |"
        )
    lines += ["", "| feature | support |", "|---|---|"]
    lines += [f"| {f} | {lo:.3f} - {hi:.3f} |" for f, (lo, hi) in model.support.items()]
    ramp_ok = s.ramp_quality[c] >= 0.3
    conf_ok = s.confidence[c] >= 0.6
    old = ramp_ok & conf_ok
    lines += [
        "",
        "Single faces judged and their accuracy on the check faces. Before: ramp quality >= 0.3 "
        "and top probability >= 0.6 (the previous defaults). After: expected accuracy >= t "
        "(and, in the last column, also top probability >= 0.6).",
        "",
        "| rule | judged % | accuracy of judged % | with confidence >= 0.6: judged % / accuracy % |",
        "|---|---|---|---|",
        f"| before | {100 * old.mean():.1f} | {100 * right[old].mean():.1f} | |",
    ]
    for t in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        ok = p >= t
        both = ok & conf_ok
        lines.append(
            f"| expected >= {t:.2f} | {100 * ok.mean():.1f} | "
            f"{100 * right[ok].mean() if ok.any() else float('nan'):.1f} | "
            f"{100 * both.mean():.1f} / "
            f"{100 * right[both].mean() if both.any() else float('nan'):.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="UTKFace folder (split.csv)")
    parser.add_argument("--models", type=Path, default=None, help="model folder")
    parser.add_argument("--variants", type=int, default=2, help="spoiled variants per face")
    parser.add_argument("--limit", type=int, default=None, help="at most this many val faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="coefficients (JSON)")
    parser.add_argument("--report", type=Path, default=None, help="calibration (markdown)")
    parser.add_argument("--samples", type=Path, default=None, help="cache of the samples (npz)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if args.samples is not None and args.samples.is_file():
        with np.load(args.samples) as z:
            s = Samples(
                z["x"], z["correct"], z["confidence"], z["ramp"], z["check"], int(z["missed"])
            )
    else:
        resolver = ModelResolver(models_dir=args.models, allow_download=False)
        s = collect(args.data, resolver, args.variants, args.limit, args.seed)
        if args.samples is not None:
            np.savez(
                args.samples,
                x=s.x,
                correct=s.correct,
                confidence=s.confidence,
                ramp=s.ramp_quality,
                check=s.check,
                missed=s.missed,
            )
    fit = ~s.check
    intercept, w = fit_logistic(s.x[fit], s.correct[fit])
    # Pose when the landmarks are unknown: the mean over the fitting faces.
    unknown = {f: float(s.x[fit, FEATURES.index(f)].mean()) for f in ("yaw", "pitch_error")}
    model = AccuracyModel(
        intercept, dict(zip(FEATURES, w.tolist(), strict=True)), unknown, support(s.x[fit])
    )
    command = "python -m edge_agent.evaluation.quality_fit " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    args.out.write_text(
        json.dumps(
            {
                "fitted_on": "UTKFace val, spoiled variants, edge path (see quality_fit.py)",
                "classifier": "default (ClassifierSettings)",
                "samples": len(s.correct),
                "model": model.to_json(),
            },
            indent=2,
        )
        + "\n"
    )
    text = report(model, s, command)
    if args.report is not None:
        args.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""A stand-in for labelled crops collected at a site, and the folder format an operator fills.

There is no labelled footage from a real site here. The stand-in takes faces that no model here
was trained on (UTKFace's *val* split: used only to stop training early, never for gradients; the
*test* split is never touched) and degrades them the way one fixed camera would: small faces
(30-60 px), blur, JPEG compression, a fixed colour cast and gamma, a fixed roll and a downward
perspective. The result is written exactly as an operator's labelling produces it: a folder of
crops and ``labels.csv`` with ``file, age, gender, split`` (gender ``female`` / ``male``), split
into a fine-tuning part (train / val) and a held-out part (test).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.faces import read_image
from models.training import TrainingError
from models.training.data import FaceFolder, FaceLabel, Split


@dataclass(frozen=True)
class CameraProfile:
    """How one camera spoils faces. Fixed per camera; per face only size and jitter vary."""

    face_px: tuple[int, int] = (30, 60)
    blur_sigma: float = 0.8
    jpeg_quality: tuple[int, int] = (35, 65)
    gains_bgr: tuple[float, float, float] = (1.12, 1.0, 0.84)  # a cold, bluish sensor cast
    gamma: float = 1.25
    contrast: float = 0.8
    roll_degrees: float = 7.0
    tilt: float = 0.12  # perspective: the top of the face wider, as seen from above
    noise_std: float = 4.0


def degrade(
    image: npt.NDArray[np.uint8], camera: CameraProfile, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    x: npt.NDArray[np.float32] = image.astype(np.float32)
    # Colour: gains, lower contrast, gamma; the same for every face of the camera.
    x = x * np.array(camera.gains_bgr, dtype=np.float32)
    x = (x - 128) * camera.contrast + 128
    x = (255 * (np.clip(x, 0, 255) / 255) ** camera.gamma).astype(np.float32)
    # Geometry: roll (+- a little) and a keystone from looking down.
    angle = camera.roll_degrees + rng.uniform(-2, 2)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    x = np.asarray(cv2.warpAffine(x, rot, (w, h), borderMode=cv2.BORDER_REFLECT), np.float32)
    d = camera.tilt * w / 2
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = np.array([[-d / 2, 0], [w + d / 2, 0], [w - d / 2, h], [d / 2, h]], dtype=np.float32)
    keystone = cv2.getPerspectiveTransform(src, dst)
    x = np.asarray(
        cv2.warpPerspective(x, keystone, (w, h), borderMode=cv2.BORDER_REFLECT), np.float32
    )
    # Resolution: the whole crop shrinks so that the face (about 60 % of a crop) is face_px wide.
    face = rng.uniform(*camera.face_px)
    side = max(16, round(face / 0.6))
    x = np.asarray(cv2.GaussianBlur(x, (0, 0), camera.blur_sigma * w / side), np.float32)
    x = np.asarray(cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA), np.float32)
    x = x + rng.normal(0, camera.noise_std, x.shape).astype(np.float32)
    small = np.clip(x, 0, 255).astype(np.uint8)
    quality = int(rng.integers(camera.jpeg_quality[0], camera.jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise TrainingError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8)


@dataclass(frozen=True)
class SiteSplit:
    finetune_train: float = 0.55
    finetune_val: float = 0.15  # the rest (0.30) is held out


def make_site_standin(
    source: FaceFolder,
    out: Path,
    camera: CameraProfile | None = None,
    limit: int | None = None,
    seed: int = 0,
    fractions: SiteSplit | None = None,
) -> list[FaceLabel]:
    """Write the degraded crops and ``labels.csv`` to ``out``; return the labels written."""
    camera = camera or CameraProfile()
    fractions = fractions or SiteSplit()
    pool = source.split(Split.VAL)
    if not pool:
        raise TrainingError(f"{source.images}: no val-split faces to build a site stand-in from")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    if limit is not None:
        order = order[:limit]
    chosen = [pool[i] for i in order]
    n = len(chosen)
    n_train = round(n * fractions.finetune_train)
    n_val = round(n * fractions.finetune_val)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    written = []
    for k, lab in enumerate(chosen):
        split = Split.TRAIN if k < n_train else Split.VAL if k < n_train + n_val else Split.TEST
        name = f"site_{k:05d}.jpg"
        crop = degrade(read_image(source.images / lab.file), camera, rng)
        cv2.imwrite(str(images / name), crop)
        written.append(FaceLabel(name, lab.age, lab.female, split))
    write_labels_csv(out / "labels.csv", written)
    (out / "camera.txt").write_text(
        "stand-in site crops: UTKFace val-split faces degraded by\n"
        + "\n".join(f"{k} = {v}" for k, v in asdict(camera).items())
        + "\n"
    )
    return written


def write_labels_csv(path: Path, labels: Sequence[FaceLabel]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "age", "gender", "split"])
        for lab in labels:
            w.writerow(
                [lab.file, f"{lab.age:g}", "female" if lab.female else "male", lab.split.value]
            )

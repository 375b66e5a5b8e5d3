"""A tiny stand-in for the UTKFace folder (split.csv + 200x200 images) so the scenario generator
and the scoring can be tested without the shared data."""

import csv
from pathlib import Path

import cv2
import numpy as np

SPLITS = {"test": 24, "val": 4, "train": 4}


def fake_utkface(root: Path) -> Path:
    """``root``/utkface with face-like drawings: an oval, two eyes and a mouth per image, and
    labels that make every split recognisable (test faces are 20-43 years old, others 70+)."""
    folder = root / "utkface"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for split, n in SPLITS.items():
        for i in range(n):
            age = 20 + i if split == "test" else 70 + i
            gender = i % 2
            name = f"{age}_{gender}_0_{split}{i:03d}.jpg.chip.jpg"
            image = np.full((200, 200, 3), int(rng.integers(60, 120)), np.uint8)
            skin = tuple(int(v) for v in rng.integers(120, 220, 3))
            cv2.ellipse(image, (100, 100), (80, 96), 0, 0, 360, skin, -1)
            for x in (65, 135):
                cv2.circle(image, (x, 80), 9, (30, 30, 30), -1)
            cv2.ellipse(image, (100, 145), (30, 10), 0, 0, 360, (40, 40, 150), -1)
            cv2.imwrite(str(folder / "images" / name), image)
            rows.append({"file": name, "age": age, "gender": gender, "race": 0, "split": split})
    with (folder / "split.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["file", "age", "gender", "race", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return folder

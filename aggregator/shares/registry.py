"""The calibrations the share estimate can use: each classifier's own, fitted on its validation
faces and shipped with the aggregator (``calibrations/<model>.json``), found by the model named in
the events.

A file holds ``{"role": "gender" | "age", "model": name, "calibration": Calibration.to_dict(),
"fitted_on": ..., "command": ...}`` and is written by ``python -m aggregator.shares.fit_model``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from aggregator.shares.calibration import Calibration

ROLES = ("gender", "age")


@dataclass(frozen=True)
class ModelCalibration:
    role: str
    model: str
    calibration: Calibration
    fitted_on: str


def parse(data: dict[str, Any]) -> ModelCalibration:
    try:
        role = str(data["role"])
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return ModelCalibration(
            role,
            str(data["model"]),
            Calibration.from_dict(data["calibration"]),
            str(data.get("fitted_on", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a model calibration: {exc}") from None


@cache
def bundled() -> dict[tuple[str, str], ModelCalibration]:
    """(role, model name) -> its calibration, from the files shipped in the package."""
    out: dict[tuple[str, str], ModelCalibration] = {}
    folder = resources.files("aggregator.shares").joinpath("calibrations")
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found = parse(json.loads(entry.read_text(encoding="utf-8")))
            out[(found.role, found.model)] = found
    return out


def model_of(role: str, models: Counter[str]) -> str | None:
    """The model most of a spot's events name for ``role`` (``models`` counts the events' models
    JSON texts), or None."""
    by_name: Counter[str] = Counter()
    for text, n in models.items():
        try:
            items = json.loads(text)
        except ValueError:
            continue
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("role") == role and "name" in item:
                by_name[str(item["name"])] += n
    return by_name.most_common(1)[0][0] if by_name else None


def calibration_for(role: str, model: str | None) -> ModelCalibration | None:
    return bundled().get((role, model)) if model else None

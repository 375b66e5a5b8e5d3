"""Fit a classifier's share calibrations (gender and age) on its validation faces and write them
where the aggregator finds them.

    python -m aggregator.shares.fit_model cydral --data ../shared/data/utkface \\
        --models-dir ../shared/models

writes ``aggregator/shares/calibrations/cydral-gender.json`` and ``cydral-age.json`` (the names the
events give the two heads; ``--gender-name`` / ``--age-name`` for others).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aggregator.shares.calibration import fit_calibration
from aggregator.shares.labelled import predict_split

CALIBRATIONS = Path(__file__).with_name("calibrations")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a manifest model, e.g. cydral")
    parser.add_argument("--data", type=Path, required=True, help="UTKFace folder with split.csv")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--gender-name")
    parser.add_argument("--age-name")
    parser.add_argument("--out-dir", type=Path, default=CALIBRATIONS)
    parser.add_argument("--replicates", type=int, default=50)
    args = parser.parse_args(argv)
    if args.split == "test":
        parser.error("calibrations are fitted on held-out data; the test split is for evaluation")
    faces = predict_split(args.data, args.split, args.model, models_dir=args.models_dir)
    fitted_on = f"UTKFace {args.split} ({len(faces):,} faces), the edge's alignment, flip averaging"
    command = f"python -m aggregator.shares.fit_model {args.model} --data DATA --split {args.split}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for role, name, posteriors, labels in (
        ("gender", args.gender_name or f"{args.model}-gender", faces.gender, faces.gender_labels),
        ("age", args.age_name or f"{args.model}-age", faces.age, faces.age_labels),
    ):
        # Chosen on crowds of labelled faces (results/crowds.md): the gender head's posteriors
        # are near 0 or 1, so its adjusted count is steadier than EM; the age head's 8 classes
        # make the confusion matrix too noisy to invert, and EM on vector-scaled posteriors wins.
        method, bias = ("acc", False) if role == "gender" else ("em", True)
        calibration = fit_calibration(
            f"{name} on UTKFace {args.split}",
            posteriors,
            labels,
            replicates=args.replicates,
            method=method,
            bias=bias,
        )
        path = args.out_dir / f"{name}.json"
        record = {
            "role": role,
            "model": name,
            "fitted_on": fitted_on,
            "command": command,
            "calibration": calibration.to_dict(),
        }
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(
            f"{path}: prior {', '.join(f'{v:.3f}' for v in calibration.prior)}, "
            f"scale {calibration.scale:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

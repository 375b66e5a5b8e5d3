"""The accuracy numbers the quality gate watches, and the stored baseline they are held to.

Four slices, each small enough for CI on two cores: a short scenario (about 300 frames, test
faces) through face mode with default settings, the real TUD-Stadtmitte clip (179 frames,
MOTChallenge ground truth) through person mode, the first 60 WIDER images through YuNet at
320 and 640 px, and an even slice of 300 UTKFace test faces through the age/gender benchmark
(K average, no flip: the pipeline's defaults). Accuracy only: no number here depends on how fast
the machine is.

Regenerate the baseline after an intended change (and say why in the commit)::

    FOOTFALL_SHARED_DIR=../shared .venv/bin/python -m tests.quality.gate --write
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge_agent.evaluation.agegender_bench import prepare
from edge_agent.evaluation.agegender_bench import score as score_agegender
from edge_agent.evaluation.detector_bench import bench_detectors, yunet_at
from edge_agent.evaluation.evaluate import Config, eval_config, evaluate_spec
from edge_agent.evaluation.mot import evaluate_mot
from edge_agent.evaluation.mot_truth import load_mot
from edge_agent.evaluation.scenario import ScenarioSpec
from edge_agent.vision.detection import YuNetDetector
from models.assets import ModelResolver
from models.runtime.classifier import cydral_classifier

BASELINE = Path(__file__).resolve().parent / "baseline.json"
WRITE_COMMAND = "FOOTFALL_SHARED_DIR=../shared .venv/bin/python -m tests.quality.gate --write"

GATE_SCENARIO = ScenarioSpec(
    name="gate-short",
    seed=7,
    fps=12.0,
    people=14,
    arrivals_per_minute=30,
    duration_seconds=26.0,
    face_px=(45, 100),
    pause_probability=0.15,
    turned_away_probability=0.2,
    group_probability=0.15,
    background="median:vtest",
)


@dataclass(frozen=True)
class Limit:
    """How far a metric may move the wrong way before the gate fails."""

    higher_is_better: bool
    tolerance: float


# Tolerances: the computations are deterministic on one machine; the slack covers other CPUs
# and library builds (a person or two in the scenario, a face or two in the slices).
LIMITS: dict[str, Limit] = {
    "scenario.count_error": Limit(False, 0.08),
    "scenario.direction_accuracy": Limit(True, 0.08),
    "scenario.id_switches": Limit(False, 2),
    "scenario.matched_people": Limit(True, 1),
    "scenario.gender_accuracy": Limit(True, 0.08),
    "scenario.age_one_off": Limit(True, 0.08),
    "scenario.gender_unknown_share": Limit(False, 0.1),
    "mot.tud.person.found": Limit(True, 1),
    "mot.tud.person.split": Limit(False, 1),
    "mot.tud.person.idf1": Limit(True, 0.05),
    "mot.tud.person.id_switches": Limit(False, 3),
    "mot.tud.person.crossing_error": Limit(False, 0.5),
    "wider.yunet@320.easy.ap": Limit(True, 0.02),
    "wider.yunet@320.medium.ap": Limit(True, 0.02),
    "wider.yunet@640.easy.ap": Limit(True, 0.02),
    "wider.yunet@640.medium.ap": Limit(True, 0.02),
    "utkface.gender_accuracy": Limit(True, 0.015),
    "utkface.age_exact": Limit(True, 0.02),
    "utkface.age_one_off": Limit(True, 0.015),
}


def measure(shared: Path) -> dict[str, float]:
    cv2.setNumThreads(1)
    models = shared / "models"
    resolver = ModelResolver(models_dir=models, allow_download=False)
    out: dict[str, float] = {}

    _, (scenario,) = evaluate_spec(
        GATE_SCENARIO, shared, resolver, configs=(Config.FACE,), base=eval_config()
    )
    for name in ("count_error", "direction_accuracy", "id_switches", "matched_people"):
        out[f"scenario.{name}"] = float(getattr(scenario, name) or 0.0)
    out["scenario.gender_accuracy"] = float(scenario.gender_accuracy or 0.0)
    out["scenario.age_one_off"] = float(scenario.age_one_off or 0.0)
    # Accuracy is of the people judged: the share left unknown is watched with it, so that
    # neither can be bought with the other.
    out["scenario.gender_unknown_share"] = float(scenario.gender_unknown_share or 0.0)

    out.update(measure_mot(shared, resolver))

    yunet = models / "face_detection_yunet_2023mar.onnx"
    detectors = {f"yunet@{w}": (yunet_at(yunet, w), 0.5) for w in (320, 640)}
    for s in bench_detectors(shared / "data" / "wider_val_subset", detectors, limit=60):
        out[f"wider.{s.detector}.{s.subset}.ap"] = s.ap

    classifier = cydral_classifier(models / "gender-v1.onnx", models / "age-v1.onnx")
    detector = YuNetDetector(yunet, input_width=320)
    people = prepare(
        shared / "data" / "utkface", detector, classifier.chip_size, split="test", limit=300
    )
    ref = next(
        s for s in score_agegender(people, classifier) if s.condition == "K average" and not s.flip
    )
    out["utkface.gender_accuracy"] = ref.gender_accuracy
    out["utkface.age_exact"] = ref.age_exact
    out["utkface.age_one_off"] = ref.age_one_off
    return out


def measure_mot(shared: Path, resolver: ModelResolver) -> dict[str, float]:
    """Person mode on TUD-Stadtmitte against its ground truth (see ``eval mot``)."""
    clip = shared / "video" / "tud_stadtmitte.mp4"
    truth = load_mot(clip.with_name("tud_stadtmitte.gt.txt"))
    (score,) = evaluate_mot(clip, truth, resolver, configs=(Config.PERSON,), base=eval_config())
    return {
        "mot.tud.person.found": float(score.found),
        "mot.tud.person.split": float(score.split),
        "mot.tud.person.idf1": score.idf1,
        "mot.tud.person.id_switches": float(score.id_switches),
        "mot.tud.person.crossing_error": score.crossing_error or 0.0,
    }


def failures(measured: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """One line per metric that moved the wrong way by more than its tolerance."""
    problems = []
    for name, limit in LIMITS.items():
        if name not in baseline:
            problems.append(f"{name}: not in the baseline; regenerate it ({WRITE_COMMAND})")
            continue
        base, value = baseline[name], measured[name]
        worse = base - value if limit.higher_is_better else value - base
        if worse > limit.tolerance + 1e-9:
            problems.append(
                f"{name}: {value:.4f} vs baseline {base:.4f} (allowed {limit.tolerance} worse)"
            )
    return problems


def load_baseline() -> dict[str, float]:
    data = json.loads(BASELINE.read_text(encoding="utf-8"))
    return {k: float(v) for k, v in data["metrics"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the quality-gate metrics")
    parser.add_argument("--shared", type=Path, default=os.environ.get("FOOTFALL_SHARED_DIR"))
    parser.add_argument("--write", action="store_true", help="store them as the new baseline")
    args = parser.parse_args()
    if args.shared is None:
        print("set FOOTFALL_SHARED_DIR or pass --shared", file=sys.stderr)
        return 2
    measured = measure(Path(args.shared))
    print(json.dumps(measured, indent=2))
    if args.write:
        BASELINE.write_text(
            json.dumps(
                {
                    "command": WRITE_COMMAND,
                    "opencv": cv2.__version__,
                    "metrics": {k: round(v, 4) for k, v in sorted(measured.items())},
                    "tolerances": {
                        k: {"higher_is_better": v.higher_is_better, "tolerance": v.tolerance}
                        for k, v in LIMITS.items()
                    },
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"written: {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

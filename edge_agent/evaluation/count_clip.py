"""People counted on a clip without ground truth, per mode, for comparing with a count by eye:

    python -m edge_agent.evaluation.count_clip --clip ../shared/video/short_hamilton_clip.mp4

Prints, per pipeline, the events, how many are unknown, and each event's dwell, gender,
direction and, when unknown, why. ``--models DIR`` is the folder of models that are not
bundled (a missing model is named with what to do). ``--config FILE`` runs the pipelines with
an agent configuration (e.g. ``[person] face_search = "upper_body"``) instead of the defaults.
"""

import argparse
import sys
from pathlib import Path

import cv2

from edge_agent.build import BuildError
from edge_agent.config import load_agent_config
from edge_agent.evaluation.evaluate import (
    Config,
    build_pipeline,
    eval_config,
    record_runs,
    video_frames,
)
from footfall.settings import ConfigError
from models.assets import ModelResolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=None, help="model folder")
    parser.add_argument("--config", type=Path, default=None, help="agent configuration (TOML)")
    args = parser.parse_args()
    base = eval_config()
    if args.config is not None:
        try:
            loaded = load_agent_config(
                args.config, defaults={"site": "eval", "spot": "clip", "agent": "eval"}
            )
        except ConfigError as exc:
            sys.exit(f"error: {exc}")
        base = loaded.model_copy(update={"site": "eval", "spot": "scenario", "agent": "eval"})
    if not args.clip.is_file():
        sys.exit(f"error: clip {args.clip} not found: give the path of a video file")
    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(args.clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    resolver = ModelResolver(models_dir=args.models, allow_download=False)
    try:
        pipelines = {c.value: build_pipeline(c, base, resolver) for c in Config}
    except BuildError as exc:
        sys.exit(f"error: {exc}")
    runs = record_runs(pipelines, video_frames(args.clip), fps)
    for name, run in runs.items():
        unknown = sum(e.gender.label.value == "unknown" for e in run.events)
        print(f"{name}: {len(run.events)} people, {unknown} unknown")
        for e in run.events:
            why = f"  ({e.face.note})" if e.face.note else ""
            print(f"  {e.dwell_seconds:5.1f} s  {e.gender.label.value:8} {e.direction.value}{why}")


if __name__ == "__main__":
    main()

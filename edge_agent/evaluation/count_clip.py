"""People counted on a clip without ground truth, per mode, for comparing with a count by eye:

    python -m edge_agent.evaluation.count_clip --clip ../shared/video/short_hamilton_clip.mp4

Prints, per pipeline, the events, how many are unknown, and each event's dwell, gender and
direction.
"""

import argparse
from pathlib import Path

import cv2

from edge_agent.evaluation.evaluate import (
    Config,
    build_pipeline,
    eval_config,
    record_runs,
    video_frames,
)
from models.assets import ModelResolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=None, help="model folder")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(args.clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    resolver = ModelResolver(models_dir=args.models, allow_download=False)
    pipelines = {c.value: build_pipeline(c, eval_config(), resolver) for c in Config}
    runs = record_runs(pipelines, video_frames(args.clip), fps)
    for name, run in runs.items():
        unknown = sum(e.gender.label.value == "unknown" for e in run.events)
        print(f"{name}: {len(run.events)} people, {unknown} unknown")
        for e in run.events:
            print(f"  {e.dwell_seconds:5.1f} s  {e.gender.label.value:8} {e.direction.value}")


if __name__ == "__main__":
    main()

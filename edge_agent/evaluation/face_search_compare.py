"""Person mode's two face searches (``person.face_search``) side by side on real clips:

    python -m edge_agent.evaluation.face_search_compare --models /work/shared/models \\
        --clip /work/shared/video/tud_stadtmitte.mp4 --clip /work/shared/video/vtest.avi

Every frame goes through both pipelines in turn (one thread), so their times are taken under the
same load. Prints, per clip and search: people (events), people with at least one face attached
on some detector run, people with a usable face (one rated above chance, kept among their best),
people judged (gender not unknown) with their track ids (the tracks are the same in both: faces
do not steer the tracker), and ms per frame of the face stage (the face detector's calls; the
crops' resizing is in the whole step) next to decoding's and the whole step's.
"""

import argparse
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.build import build_classifier, build_detector, build_person_detector
from edge_agent.evaluation.evaluate import eval_config
from edge_agent.evaluation.timed_stages import TimedDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import FaceSearch, PipelineMode
from footfall.contract import PersonEvent
from models.assets import ModelResolver

U8 = npt.NDArray[np.uint8]
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@dataclass
class _Run:
    pipeline: Pipeline
    faces: TimedDetector
    step_seconds: float = 0.0
    events: list[PersonEvent] = field(default_factory=list)
    with_face: set[int] = field(default_factory=set)
    face_heights: list[float] = field(default_factory=list)  # px, every face attached


def _pipeline(search: FaceSearch, resolver: ModelResolver) -> _Run:
    cfg = eval_config({"mode": PipelineMode.PERSON.value, "person": {"face_search": search.value}})
    faces = TimedDetector(build_detector(cfg.detector, resolver))
    pipe = Pipeline.from_config(
        cfg,
        detector=faces,
        classifier=build_classifier(cfg.classifier, resolver),
        person_detector=build_person_detector(cfg.person, resolver),
    )
    return _Run(pipe, faces)


def compare(clip: Path, resolver: ModelResolver) -> list[str]:
    runs = {s: _pipeline(s, resolver) for s in FaceSearch}
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {clip}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, decode = 0, 0.0
    while True:
        t0 = time.perf_counter()
        ok, image = cap.read()
        decode += time.perf_counter() - t0
        if not ok:
            break
        frame = np.asarray(image, np.uint8)
        stamp = START + timedelta(seconds=frames / fps)
        for run in runs.values():
            t0 = time.perf_counter()
            run.events += [f.event for f in run.pipeline.step(frame, stamp)]
            run.step_seconds += time.perf_counter() - t0
            view = run.pipeline.view()
            if view is not None and view.detected:
                run.with_face |= set(view.attached)
                boxes = view.faces.boxes[list(view.attached.values())]
                run.face_heights += (boxes[:, 3] - boxes[:, 1]).tolist()
        frames += 1
    cap.release()
    lines = [f"{clip.name}: {frames} frames, decode {1000 * decode / frames:.2f} ms/frame"]
    for search, run in runs.items():
        run.events += [f.event for f in run.pipeline.finish()]
        people = {e.track_id for e in run.events}
        judged = [e for e in run.events if e.gender.label.value != "unknown"]
        # A face attached but rated at chance is never kept: the event says no face was seen.
        usable = sum((e.face.quality or 0.0) > 0 for e in run.events)
        genders = sorted(e.gender.label.value for e in judged)
        lines.append(
            f"  {search.value:10} people {len(people):3}  with a face {len(people & run.with_face):3}"
            f"  with a usable face {usable:3}  judged {len(judged):3} {genders}  face stage "
            f"{1000 * run.faces.seconds / frames:.2f} ms/frame "
            f"({run.faces.calls / frames:.2f} detector calls/frame)  whole step "
            f"{1000 * run.step_seconds / frames:.2f} ms/frame"
        )
        heights = np.asarray(run.face_heights or [0.0])
        lines.append(
            f"             faces attached {len(run.face_heights)} (median height "
            f"{np.median(heights):.1f} px, {int((heights >= 16).sum())} of 16 px or more); best "
            "quality per person "
            + " ".join(
                f"{e.face.quality:.2f}" for e in sorted(run.events, key=lambda e: e.track_id)
            )
        )
        lines.append(
            "             judged tracks "
            + " ".join(f"{e.track_id}:{e.gender.label.value}" for e in judged)
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, action="append", required=True)
    parser.add_argument("--models", type=Path, default=None, help="model folder")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    resolver = ModelResolver(models_dir=args.models, allow_download=False)
    for clip in args.clip:
        print("\n".join(compare(clip, resolver)), flush=True)


if __name__ == "__main__":
    main()

"""Per-stage cost of the vision pipeline: decode, detect, track, classify and total, in ms per
frame, single thread, at 640x480 and 1280x720, for YuNet at three detection widths (and one
run detecting every 2nd frame) and for the seed's ResNet-10 SSD, each detecting on every frame,
plus face mode's default configuration (YuNet at 640 px, at most 12 detector runs a second) and
person mode's (NanoDet-m at 320 px plus YuNet at 640 px on the same frames, at most 12 a second),
with faces searched on the whole frame and on each body's upper part (``person.face_search``).
``--only NAME`` runs some rows (repeatable), ``--name STEM`` writes under another file name.

Not a test (pytest does not collect it) and not for loops: run it once, on an otherwise idle
machine if you can::

    FOOTFALL_SHARED_DIR=../shared .venv/bin/python -m tests.bench.bench_pipeline_stages

Writes ``tests/bench/results/pipeline_stages.json`` and ``.md`` and prints the table.

Stages: ``decode`` = ``VideoCapture.read``; ``detect`` = the detector(s) including their resize,
of which ``faces`` is the face detector's share (in person mode: its calls on the frame or on
the crops; cutting and enlarging the crops is in ``track``);
``track`` = everything else in ``Pipeline.step`` (scene-cut check, tracker, counting, face
quality, alignment of candidate chips, crops); ``classify`` = gender + age models on the K best
chips at each track's end, spread over all frames (also given per person); ``total`` = the
whole single-threaded loop. The 640x480 street clip is the shared TUD file as is (MPEG-4 part
2); the other inputs are the shared clips resized and re-encoded with the mp4v codec (the only
encoder in the OpenCV wheel), so decode times depend on that codec.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.build import build_classifier, build_detector, build_person_detector
from edge_agent.config import AgentConfig
from edge_agent.evaluation.timed_stages import TimedClassifier, TimedDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import PipelineMode
from models.assets import ModelResolver

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass
class Row:
    resolution: str
    clip: str
    detector: str
    frames: int
    decode_ms: float
    detect_ms: float
    faces_ms: float
    track_ms: float
    classify_ms: float
    total_ms: float
    fps: float
    people: int
    classified: int
    classify_ms_per_person: float


def _resized_clip(source: Path, size: tuple[int, int], folder: Path, max_frames: int) -> Path:
    target = folder / f"{source.stem}_{size[0]}x{size[1]}.mp4"
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    for _ in range(max_frames):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    return target


def _run(
    path: Path, cfg: AgentConfig, resolver: ModelResolver, max_frames: int
) -> tuple[int, float, float, float, float, float, float, int, int]:
    detector = TimedDetector(build_detector(cfg.detector, resolver))
    bodies = (
        TimedDetector(build_person_detector(cfg.person, resolver))
        if cfg.mode is PipelineMode.PERSON
        else None
    )
    classifier = TimedClassifier(build_classifier(cfg.classifier, resolver))
    pipe = Pipeline.from_config(
        cfg, detector=detector, classifier=classifier, person_detector=bodies
    )
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    decode = step = 0.0
    frames = 0
    people = 0
    loop_start = time.perf_counter()
    while frames < max_frames:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        t1 = time.perf_counter()
        if not ok:
            break
        image = np.asarray(frame, np.uint8)
        people += len(pipe.step(image, START + timedelta(seconds=frames / fps)))
        step += time.perf_counter() - t1
        decode += t1 - t0
        frames += 1
    t = time.perf_counter()
    people += len(pipe.finish())
    step += time.perf_counter() - t
    total = time.perf_counter() - loop_start
    cap.release()
    detect = detector.seconds + (bodies.seconds if bodies is not None else 0.0)
    track = step - detect - classifier.seconds
    return (
        frames,
        decode,
        detect,
        detector.seconds,
        track,
        classifier.seconds,
        total,
        people,
        classifier.people,
    )


# Every row but the last detects on every frame (or every 2nd), so "detect" is the detector's
# own cost; the last is the shipped default, which on these 25 fps clips detects at most 12
# times a second (about every 2nd frame).
EVERY_FRAME = {"max_detections_per_second": 0}


def _face(detector: dict[str, object]) -> dict[str, object]:
    return {"mode": "face", "detector": detector}


DETECTORS: list[tuple[str, dict[str, object]]] = [
    ("yunet@320", _face({"kind": "yunet", "input_width": 320, **EVERY_FRAME})),
    (
        "yunet@320 every 2nd",
        _face({"kind": "yunet", "input_width": 320, "detect_every_n_frames": 2, **EVERY_FRAME}),
    ),
    ("yunet@480", _face({"kind": "yunet", "input_width": 480, **EVERY_FRAME})),
    ("yunet@640", _face({"kind": "yunet", "input_width": 640, **EVERY_FRAME})),
    ("ssd (seed)", _face({"kind": "ssd", **EVERY_FRAME})),
    ("face mode: yunet@640, at most 12/s", _face({"kind": "yunet", "input_width": 640})),
    ("person mode: nanodet@320 + yunet@640, at most 12/s", {"mode": "person"}),
    (
        "person mode, faces on upper bodies: nanodet@320 + yunet on crops, at most 12/s",
        {"mode": "person", "person": {"face_search": "upper_body"}},
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=os.environ.get("FOOTFALL_SHARED_DIR"))
    parser.add_argument("--max-frames", type=int, default=180)
    parser.add_argument("--only", action="append", help="run only rows whose name starts so")
    parser.add_argument("--name", default="pipeline_stages", help="results file stem")
    args = parser.parse_args()
    rows_wanted = [
        (name, overrides)
        for name, overrides in DETECTORS
        if not args.only or any(name.startswith(o) for o in args.only)
    ]
    if args.shared is None:
        print("set FOOTFALL_SHARED_DIR or pass --shared", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    video = Path(args.shared) / "video"
    resolver = ModelResolver(models_dir=Path(args.shared) / "models", allow_download=False)
    load = os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = [
            ("640x480", "street (TUD)", video / "tud_stadtmitte.mp4"),
            (
                "640x480",
                "stage (Hamilton)",
                _resized_clip(
                    video / "short_hamilton_clip.mp4", (640, 480), folder, args.max_frames
                ),
            ),
            (
                "1280x720",
                "street (TUD)",
                _resized_clip(video / "tud_stadtmitte.mp4", (1280, 720), folder, args.max_frames),
            ),
            (
                "1280x720",
                "stage (Hamilton)",
                _resized_clip(
                    video / "short_hamilton_clip.mp4", (1280, 720), folder, args.max_frames
                ),
            ),
        ]
        for resolution, clip, path in inputs:
            for name, overrides in rows_wanted:
                cfg = AgentConfig.model_validate(
                    {"site": "bench", "spot": "bench", "agent": "bench", **overrides}
                )
                frames, dec, det, faces, trk, cls, total, people, classified = _run(
                    path, cfg, resolver, args.max_frames
                )
                ms = 1000.0 / frames
                row = Row(
                    resolution=resolution,
                    clip=clip,
                    detector=name,
                    frames=frames,
                    decode_ms=round(dec * ms, 2),
                    detect_ms=round(det * ms, 2),
                    faces_ms=round(faces * ms, 2),
                    track_ms=round(trk * ms, 2),
                    classify_ms=round(cls * ms, 2),
                    total_ms=round(total * ms, 2),
                    fps=round(frames / total, 1),
                    people=people,
                    classified=classified,
                    classify_ms_per_person=round(1000 * cls / classified, 1) if classified else 0.0,
                )
                rows.append(row)
                print(f"{resolution} {clip} {name}: {row.total_ms} ms/frame", file=sys.stderr)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "load_average_at_start": [round(v, 2) for v in load],
        "frames_per_run": args.max_frames,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n",
        encoding="utf-8",
    )
    header = (
        "| resolution | clip | detector | decode | detect | of which faces | track | classify "
        "| total | fps | people | classify/person |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.resolution} | {r.clip} | {r.detector} | {r.decode_ms:.2f} | {r.detect_ms:.2f} "
        f"| {r.faces_ms:.2f} | {r.track_ms:.2f} | {r.classify_ms:.2f} | {r.total_ms:.2f} | {r.fps:.0f} "
        f"| {r.people} | {r.classify_ms_per_person:.1f} |"
        for r in rows
    ]
    table = (
        f"ms per frame, single thread, {meta['frames_per_run']} frames per run; "
        f"OpenCV {meta['opencv']}, {meta['cpus']} CPUs, load average at start "
        f"{meta['load_average_at_start']}\n\n" + header + "\n".join(lines) + "\n"
    )
    (RESULTS / f"{args.name}.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choosing tracker and detector-cadence settings on the standard scenarios built from UTKFace
*val* faces (the test split stays for reporting), at a chosen frame rate.

Not a test and not part of CI: a tool for comparing configurations quickly. Every scenario is
rendered on the fly and each frame is fed to every configuration in turn; YuNet's detections are
cached per (scenario, split, fps, detector settings, frame), so after the first pass only the
tracker and the rest of the pipeline run::

    FOOTFALL_SHARED_DIR=../shared .venv/bin/python tests/bench/tune_tracker.py \
        --fps 12 --configs '{"default": {}, "no reid": {"tracker": {"appearance_reid": false}}}'

``--configs`` is JSON (or @file): a name for each configuration and its overrides, sections as
in the agent's TOML file. The output is one pooled row per configuration (plus per-scenario
rows with ``--per-scenario``).
"""

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge_agent.build import build_classifier, build_detector
from edge_agent.evaluation.evaluate import eval_config, record_runs
from edge_agent.evaluation.scenario import ScenarioRenderer, build_renderer
from edge_agent.evaluation.score import ScenarioScore, score_run
from edge_agent.evaluation.suite import suite_specs, totals
from edge_agent.vision.detection import Detections, FaceDetector
from edge_agent.vision.pipeline import Pipeline
from footfall.contract import ModelRef
from models.assets import ModelResolver

U8 = np.ndarray


class CachedDetector:
    """The real detector, its answers remembered by frame index (set before each frame)."""

    def __init__(self, inner: FaceDetector, cache: dict[int, Detections]) -> None:
        self.inner, self.cache, self.index = inner, cache, 0

    @property
    def model(self) -> ModelRef:
        return self.inner.model

    def detect(self, frame: U8) -> Detections:
        found = self.cache.get(self.index)
        if found is None:
            found = self.cache[self.index] = self.inner.detect(frame)
        return found


def _load(path: Path) -> dict[int, Detections]:
    if not path.is_file():
        return {}
    data = np.load(path)
    out = {}
    for key in data.files:
        if key.startswith("b"):
            i = int(key[1:])
            out[i] = Detections(data[f"b{i}"], data[f"s{i}"], data[f"l{i}"])
    return out


def _save(path: Path, cache: dict[int, Detections]) -> None:
    arrays = {}
    for i, d in cache.items():
        arrays[f"b{i}"], arrays[f"s{i}"], arrays[f"l{i}"] = d.boxes, d.scores, d.landmarks
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def _frames(
    renderer: ScenarioRenderer, detectors: list[CachedDetector]
) -> Iterator[tuple[int, U8]]:
    for index, frame in renderer.frames():
        for det in detectors:
            det.index = index
        yield index, frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=os.environ.get("FOOTFALL_SHARED_DIR"))
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--scenario", action="append", help="only these (repeat)")
    parser.add_argument("--configs", default='{"default": {}}', help="JSON or @file")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/footfall-tune-cache"))
    parser.add_argument("--per-scenario", action="store_true")
    parser.add_argument("--out", type=Path, help="write all scores as JSON here")
    args = parser.parse_args()
    if args.shared is None:
        print("set FOOTFALL_SHARED_DIR or pass --shared", file=sys.stderr)
        return 2
    text = args.configs
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    overrides: dict[str, dict[str, object]] = json.loads(text)
    cv2.setNumThreads(1)
    shared = Path(args.shared)
    resolver = ModelResolver(models_dir=shared / "models", allow_download=False)
    args.cache.mkdir(parents=True, exist_ok=True)
    configs = {name: eval_config(o) for name, o in overrides.items()}
    scores: list[ScenarioScore] = []
    for spec in suite_specs(args.scenario, args.split):
        spec = spec.model_copy(update={"fps": args.fps})
        # One detection cache per detector setting among the configurations.
        caches: dict[str, tuple[Path, dict[int, Detections]]] = {}
        detectors: list[CachedDetector] = []
        pipelines: dict[str, Pipeline] = {}
        for name, cfg in configs.items():
            d = cfg.detector
            key = hashlib.sha1(
                json.dumps(
                    [
                        spec.name,
                        args.split,
                        args.fps,
                        d.kind,
                        d.input_width,
                        d.score_threshold,
                        d.nms_threshold,
                    ]
                ).encode()
            ).hexdigest()[:12]
            if key not in caches:
                path = args.cache / f"{spec.name}-{key}.npz"
                caches[key] = (path, _load(path))
            cached = CachedDetector(build_detector(cfg.detector, resolver), caches[key][1])
            detectors.append(cached)
            pipelines[name] = Pipeline.from_config(
                cfg,
                detector=cached,
                classifier=build_classifier(cfg.classifier, resolver),
            )
        sizes = {k: len(c) for k, (_, c) in caches.items()}
        renderer = build_renderer(spec, shared)

        try:
            runs = record_runs(pipelines, _frames(renderer, detectors), spec.fps)
        finally:
            renderer.close()
        gt = renderer.ground_truth()
        for key, (path, cache) in caches.items():
            if len(cache) != sizes[key]:
                _save(path, cache)
        for name, run in runs.items():
            s = score_run(gt, run, config=name)
            scores.append(s)
            if args.per_scenario:
                print(
                    f"{spec.name:20s} {name:28s} people {s.true_people:3d} events {s.events:3d} "
                    f"dir {100 * (s.direction_accuracy or 0):5.1f} idsw {s.id_switches:3d} "
                    f"split {s.split_people:2d} missed {s.missed_people:2d} "
                    f"spurious {s.spurious_events:2d} idf1 {100 * (s.idf1 or 0):5.1f}",
                    flush=True,
                )
    print(f"pooled, {args.split} faces, {args.fps:g} fps")
    for name in configs:
        t = totals(scores, name)
        print(
            f"{name:28s} events {t['events']} count err {100 * (t['count_error'] or 0):5.1f} "
            f"dir {100 * (t['direction_accuracy'] or 0):5.1f} "
            f"idsw/100 {t['id_switches_per_100']:6.2f} matched {100 * (t['matched_share'] or 0):5.1f}"
            f" gender {100 * (t['gender_accuracy'] or 0):5.1f} age1off {100 * (t['age_one_off'] or 0):5.1f}"
        )
    if args.out is not None:
        from dataclasses import asdict

        args.out.write_text(json.dumps([asdict(s) for s in scores], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running pipelines over scenarios and real clips and scoring them: the library behind
``footfall-agent eval scenario run``.

Both configurations, ours and the seed-style one (:mod:`edge_agent.evaluation.seed`), see the
same frames in the same run: a scenario is rendered once and every frame goes through each
pipeline in turn, so rendering costs nothing twice and the two are timed under the same load.
The per-frame track boxes the scoring needs come from ``Pipeline.view()``, which is built only
when asked for: the pipeline itself carries no evaluation code.
"""

import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.build import build_classifier, build_detector, build_person_detector
from edge_agent.config import AgentConfig
from edge_agent.evaluation.scenario import GroundTruth, ScenarioSpec, build_renderer
from edge_agent.evaluation.score import FrameTracks, RunRecord, ScenarioScore, score_run
from edge_agent.evaluation.seed import seed_config, seed_pipeline
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import PipelineMode
from models.assets import ModelResolver

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


class Config(StrEnum):
    """The pipelines an evaluation compares: person mode (the default for street cameras), face
    mode (kiosk cameras; the synthetic scenarios' heads on drawn bodies are made for it) and the
    seed's behaviour."""

    PERSON = "person"
    FACE = "face"
    SEED = "seed-style"


def eval_config(overrides: dict[str, object] | None = None) -> AgentConfig:
    """The agent configuration scenarios run with: defaults, plus ``overrides`` (sections as in
    the agent's TOML file)."""
    return AgentConfig.model_validate(
        {"site": "eval", "spot": "scenario", "agent": "eval", **(overrides or {})}
    )


def build_pipeline(config: Config, base: AgentConfig, resolver: ModelResolver) -> Pipeline:
    ids = itertools.count(1)
    if config is Config.SEED:
        cfg = seed_config(base)
        return seed_pipeline(
            cfg,
            detector=build_detector(cfg.detector, resolver),
            classifier=build_classifier(cfg.classifier, resolver),
            track_ids=ids,
        )
    mode = PipelineMode.PERSON if config is Config.PERSON else PipelineMode.FACE
    cfg = base.model_copy(update={"mode": mode})
    return Pipeline.from_config(
        cfg,
        detector=build_detector(cfg.detector, resolver),
        classifier=build_classifier(cfg.classifier, resolver),
        track_ids=ids,
        person_detector=(
            build_person_detector(cfg.person, resolver) if mode is PipelineMode.PERSON else None
        ),
    )


@dataclass
class _Recorder:
    """``faces``: record, per person-mode track, the box of the face attached to its body on
    that frame (tracks without one are left out of the frame) instead of the body box, so a
    person-mode run can be scored against ground truth made of face boxes (the scenarios)."""

    pipeline: Pipeline
    record: RunRecord
    faces: bool = False

    def step(self, index: int, frame: U8, timestamp: datetime) -> None:
        t0 = time.perf_counter()
        finished = self.pipeline.step(frame, timestamp)
        self.record.wall_seconds += time.perf_counter() - t0
        self.record.events += [f.event for f in finished]
        self.record.frames += 1
        view = self.pipeline.view()
        if view is None or not view.detected:
            return
        tracks = view.tracks
        keep = tracks.confirmed & tracks.seen_now
        ids = [int(v) for v in tracks.track_ids[keep].tolist()]
        if not self.faces:
            self.record.tracks[index] = FrameTracks(ids, tracks.boxes[keep])
            return
        with_face = [tid for tid in ids if tid in view.attached]
        boxes = view.faces.boxes[[view.attached[tid] for tid in with_face]]
        self.record.tracks[index] = FrameTracks(with_face, boxes.reshape(-1, 4))

    def finish(self) -> RunRecord:
        t0 = time.perf_counter()
        self.record.events += [f.event for f in self.pipeline.finish()]
        self.record.wall_seconds += time.perf_counter() - t0
        return self.record


def record_runs(
    pipelines: dict[str, Pipeline],
    frames: Iterable[tuple[int, U8]],
    fps: float,
    on_frame: Callable[[int], None] | None = None,
    face_boxes: bool = False,
) -> dict[str, RunRecord]:
    """Feed every frame to every pipeline (in turn) and record what scoring needs; with
    ``face_boxes`` a person-mode pipeline's tracks are recorded by their attached faces."""
    recorders = {
        name: _Recorder(p, RunRecord(), faces=face_boxes and p.person_detector is not None)
        for name, p in pipelines.items()
    }
    for index, frame in frames:
        stamp = START + timedelta(seconds=index / fps)
        for rec in recorders.values():
            rec.step(index, frame, stamp)
        if on_frame is not None:
            on_frame(index)
    return {name: rec.finish() for name, rec in recorders.items()}


def evaluate_spec(
    spec: ScenarioSpec,
    shared_dir: Path,
    resolver: ModelResolver,
    *,
    configs: Iterable[Config] = (Config.FACE, Config.SEED),
    base: AgentConfig | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[GroundTruth, list[ScenarioScore]]:
    """Render ``spec`` on the fly (never written to disk), run the configurations, score them."""
    base = base or eval_config()
    pipelines = {c.value: build_pipeline(c, base, resolver) for c in configs}
    renderer = build_renderer(spec, shared_dir)
    try:
        # The truth is face boxes: person mode is scored by the faces on its bodies.
        runs = record_runs(pipelines, renderer.frames(), spec.fps, on_frame, face_boxes=True)
    finally:
        renderer.close()
    gt = renderer.ground_truth()
    return gt, [score_run(gt, run, config=name) for name, run in runs.items()]


def video_frames(path: Path) -> Iterable[tuple[int, U8]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    try:
        for index in itertools.count():
            ok, frame = cap.read()
            if not ok:
                return
            yield index, np.asarray(frame, np.uint8)
    finally:
        cap.release()


def evaluate_video(
    video: Path,
    gt: GroundTruth,
    resolver: ModelResolver,
    *,
    configs: Iterable[Config] = (Config.FACE, Config.SEED),
    base: AgentConfig | None = None,
) -> list[ScenarioScore]:
    """Score a scenario that was written to a file (``eval scenario make``)."""
    base = base or eval_config()
    pipelines = {c.value: build_pipeline(c, base, resolver) for c in configs}
    runs = record_runs(pipelines, video_frames(video), gt.fps)
    return [score_run(gt, run, config=name) for name, run in runs.items()]


# -- real clips with body boxes ------------------------------------------------------------------


@dataclass
class ClipScore:
    """What a real clip with body-box ground truth can show: how many of its pedestrians were
    seen as people, split, and what else was counted. A track belongs to the pedestrian whose
    head region (the top 30% of the body box) holds its face centre most often."""

    clip: str
    config: str
    frames: int
    true_people: int
    events: int
    people_found: int
    people_split: int
    events_without_person: int


def _mot_boxes(path: Path) -> dict[int, list[tuple[int, float, float, float, float]]]:
    per_frame: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        f, pid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        per_frame[int(f) - 1].append((int(pid), x, y, w, h))
    return per_frame


def score_clip(clip: Path, gt_txt: Path, run: RunRecord, *, config: str) -> ClipScore:
    gt = _mot_boxes(gt_txt)
    votes: dict[int, Counter[int]] = defaultdict(Counter)
    for frame, tracks in run.tracks.items():
        for tid, box in zip(tracks.track_ids, tracks.boxes, strict=True):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            hit = [p for p, x, y, w, h in gt[frame] if x <= cx <= x + w and y <= cy <= y + 0.3 * h]
            votes[tid][hit[0] if hit else 0] += 1
    owners = Counter(
        votes[e.track_id].most_common(1)[0][0] if votes[e.track_id] else 0 for e in run.events
    )
    true_ids = {p for boxes in gt.values() for p, *_ in boxes}
    return ClipScore(
        clip=clip.name,
        config=config,
        frames=run.frames,
        true_people=len(true_ids),
        events=len(run.events),
        people_found=len([p for p in owners if p]),
        people_split=len([p for p, n in owners.items() if p and n > 1]),
        events_without_person=owners[0],
    )


def evaluate_clip(
    clip: Path,
    gt_txt: Path,
    resolver: ModelResolver,
    *,
    configs: Iterable[Config] = (Config.FACE, Config.SEED),
    base: AgentConfig | None = None,
) -> list[ClipScore]:
    base = base or eval_config()
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    pipelines = {c.value: build_pipeline(c, base, resolver) for c in configs}
    runs = record_runs(pipelines, video_frames(clip), fps)
    return [score_clip(clip, gt_txt, run, config=name) for name, run in runs.items()]


def clips_markdown(scores: list[ClipScore], meta: dict[str, object]) -> str:
    lines = [
        "# Real clips with body-box ground truth",
        "",
        f"Generated by `{meta['command']}` on {meta['date']}. Faces in these clips are small "
        "(vtest ~10 px, TUD ~12 px) and many pedestrians never face the camera, so a face "
        "pipeline can only find some of them; this shows how many, how often one was split, and "
        "how many events matched nobody's head.",
        "",
        "| clip | pipeline | frames | pedestrians | events | pedestrians found | split "
        "| events on nobody |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.clip} | {s.config} | {s.frames} | {s.true_people} | {s.events} "
            f"| {s.people_found} | {s.people_split} | {s.events_without_person} |"
        )
    return "\n".join(lines) + "\n"

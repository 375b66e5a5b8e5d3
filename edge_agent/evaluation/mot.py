"""Scoring pipelines on a real clip with MOTChallenge ground truth: the library behind
``footfall-agent eval mot``.

Every pipeline (person mode, face mode, seed-style) sees the same frames in one run. Scored on
the frames where a pipeline ran its detector (the tracker only predicts in between):

- **MOT metrics** (``motmetrics``): IDF1, MOTA, ID switches. A body track matches a truth box
  at IoU >= 0.5; a face track (face mode, seed) matches the pedestrian whose head region (the top
  30 % of the body box) holds the face's centre, since a face box never overlaps a body box by
  IoU.
- **People**: each event belongs to the pedestrian its track matched most often; pedestrians
  found, split (more than one event), events on nobody.
- **Line crossings**: the truth's crossings are computed from the ground-truth tracks with the
  same counting line and hysteresis (their foot points), and compared with the events' in/out.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import motmetrics as mm
import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge_agent.config import AgentConfig
from edge_agent.evaluation.evaluate import (
    Config,
    build_pipeline,
    eval_config,
    record_runs,
    video_frames,
)
from edge_agent.evaluation.mot_truth import MotTruth
from edge_agent.evaluation.score import RunRecord
from edge_agent.vision.counting import CountState, build_counter, side_of_box
from edge_agent.vision.people import count_point
from edge_agent.vision.settings import CountPoint
from edge_agent.vision.tracking.geometry import iou_matrix
from footfall.contract import Direction
from models.assets import ModelResolver

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
HEAD_SHARE = 0.3
IOU_MATCH = 0.5


@dataclass
class MotScore:
    clip: str
    pipeline: str
    frames: int
    pedestrians: int
    events: int
    found: int
    split: int
    on_nobody: int
    id_switches: int
    idf1: float
    mota: float
    true_in: int
    true_out: int
    counted_in: int
    counted_out: int
    ms_per_frame: float

    @property
    def crossing_error(self) -> float | None:
        """|in error| + |out error| over the true crossings (None when the truth has none)."""
        truth = self.true_in + self.true_out
        if truth == 0:
            return None
        return (abs(self.counted_in - self.true_in) + abs(self.counted_out - self.true_out)) / truth


def distances(truth: F32, tracks: F32, faces: bool) -> F64:
    """motmetrics distances (NaN = may not match) between truth boxes and track boxes."""
    if faces:
        cx = (tracks[:, 0] + tracks[:, 2]) / 2
        cy = (tracks[:, 1] + tracks[:, 3]) / 2
        head_bottom = truth[:, 1] + HEAD_SHARE * (truth[:, 3] - truth[:, 1])
        inside = (
            (cx[None, :] >= truth[:, None, 0])
            & (cx[None, :] <= truth[:, None, 2])
            & (cy[None, :] >= truth[:, None, 1])
            & (cy[None, :] <= head_bottom[:, None])
        )
        # Among heads holding the face, prefer the one whose centre is nearest.
        hx = (truth[:, 0] + truth[:, 2]) / 2
        d = np.abs(cx[None, :] - hx[:, None]) / np.maximum(truth[:, 2:3] - truth[:, 0:1], 1.0)
        return np.where(inside, d, np.nan).astype(np.float64)
    d = 1.0 - iou_matrix(truth, tracks)
    return np.where(d <= 1.0 - IOU_MATCH, d, np.nan)


def truth_crossings(
    truth: MotTruth, config: AgentConfig, width: int, height: int
) -> Counter[Direction]:
    """In/out of the ground-truth tracks across ``config``'s counting line (foot points)."""
    counter = build_counter(config.counting, width, height)
    out: Counter[Direction] = Counter()
    for track in truth.tracks().values():
        state = CountState()
        for _, box in track:
            state = counter.observe(state, count_point(box, CountPoint.FOOT))
        entry = side_of_box(track[0][1], width, height, config.counting.edge_margin)
        exit_side = side_of_box(track[-1][1], width, height, config.counting.edge_margin)
        out[counter.direction(state, entry, exit_side)] += 1
    return out


def score(
    clip: Path, truth: MotTruth, run: RunRecord, pipeline: str, crossings: Counter[Direction]
) -> MotScore:
    faces = pipeline != Config.PERSON.value
    acc = mm.MOTAccumulator(auto_id=False)
    votes: dict[int, Counter[int]] = defaultdict(Counter)
    for frame in sorted(run.tracks):
        tracks = run.tracks[frame]
        boxes = np.asarray(tracks.boxes, np.float32).reshape(-1, 4)
        gt_boxes, gt_ids = truth.boxes_at(frame), truth.ids_at(frame)
        dist = (
            distances(gt_boxes, boxes, faces)
            if len(gt_boxes) and len(boxes)
            else np.zeros((len(gt_boxes), len(boxes)))
        )
        acc.update(gt_ids.tolist(), list(tracks.track_ids), dist, frameid=frame)
        if len(gt_boxes) and len(boxes):
            cost = np.where(np.isnan(dist), 1e6, dist)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] < 1e6:
                    votes[tracks.track_ids[c]][int(gt_ids[r])] += 1
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"], name="x")
    owners = Counter(
        votes[e.track_id].most_common(1)[0][0] if votes[e.track_id] else 0 for e in run.events
    )
    directions = Counter(e.direction for e in run.events)
    return MotScore(
        clip=clip.name,
        pipeline=pipeline,
        frames=run.frames,
        pedestrians=len(truth.people),
        events=len(run.events),
        found=len([p for p in owners if p]),
        split=len([p for p, n in owners.items() if p and n > 1]),
        on_nobody=owners[0],
        id_switches=int(summary["num_switches"].iloc[0]),
        idf1=round(float(summary["idf1"].iloc[0]), 3),
        mota=round(float(summary["mota"].iloc[0]), 3),
        true_in=crossings[Direction.IN],
        true_out=crossings[Direction.OUT],
        counted_in=directions[Direction.IN],
        counted_out=directions[Direction.OUT],
        ms_per_frame=round(1000 * run.wall_seconds / max(run.frames, 1), 1),
    )


def evaluate_mot(
    clip: Path,
    truth: MotTruth,
    resolver: ModelResolver,
    *,
    configs: tuple[Config, ...] = (Config.PERSON, Config.FACE, Config.SEED),
    base: AgentConfig | None = None,
) -> list[MotScore]:
    """Run ``configs`` over ``clip`` (in one pass) and score each against ``truth``."""
    base = base or eval_config()
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    pipelines = {c.value: build_pipeline(c, base, resolver) for c in configs}
    runs = record_runs(pipelines, video_frames(clip), fps)
    crossings = truth_crossings(truth, base, width, height)
    return [score(clip, truth, run, name, crossings) for name, run in runs.items()]


def markdown(scores: list[MotScore], command: str, date: str) -> str:
    lines = [
        "# Real clips with MOTChallenge ground truth",
        "",
        f"Generated by `{command}` on {date}. Scored on the frames where each pipeline ran its "
        "detector; method in `edge_agent/evaluation/mot.py`. In/out: the truth's crossings come "
        "from the ground-truth tracks' foot points on the same counting line. ms/frame: the "
        "pipeline alone (decoding excluded), one thread, all pipelines in the same run.",
        "",
        "| clip | pipeline | frames | pedestrians | events | found | split | on nobody "
        "| ID switches | IDF1 | MOTA | in (truth/counted) | out (truth/counted) | crossing error "
        "| ms/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        err = s.crossing_error
        lines.append(
            f"| {s.clip} | {s.pipeline} | {s.frames} | {s.pedestrians} | {s.events} | {s.found} "
            f"| {s.split} | {s.on_nobody} | {s.id_switches} | {s.idf1:.3f} | {s.mota:.3f} "
            f"| {s.true_in}/{s.counted_in} | {s.true_out}/{s.counted_out} "
            f"| {'-' if err is None else f'{100 * err:.0f} %'} | {s.ms_per_frame} |"
        )
    return "\n".join(lines) + "\n"

"""Scoring a pipeline run against a scenario's ground truth.

The matching rule, stated once:

1. Per frame on which the detector ran, the ground-truth objects are the faces at least
   ``VISIBLE_MIN`` (50%) visible (not turned away, not hidden by nearer people or the frame
   edge); the hypotheses are the pipeline's confirmed tracks that took a detection in that
   frame (from ``Pipeline.view()``; in person mode, the faces attached to its bodies on that
   frame, since the truth is face boxes). A hypothesis pairs with a face when their boxes overlap
   with IoU >= ``MATCH_IOU`` (0.3: faces are small, and a ground-truth box is the face's extent
   in its UTKFace chip, not a box drawn by hand for this detector). Hypotheses overlapping only
   faces less than half visible are ignored ("don't care", as MOTChallenge does with its
   ignore regions) rather than counted as false positives.
2. Those per-frame pairs go to motmetrics (distance 1 - IoU) for id switches,
   fragmentations, MOTA and IDF1.
3. Each event (one per track) belongs to the ground-truth person its track was paired with in
   most frames (Hungarian per frame, same IoU rule); an event never paired is spurious. A
   person with several events was split; with none, missed. The person's own estimate is the
   event paired with them in the most frames (the "primary" event): its direction, gender and
   age group are compared with the truth.

Counts compare every event (spurious ones included: they are what a customer would see) with
every person who walked through, including those who never showed their face.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge_agent.evaluation.scenario import GroundTruth
from edge_agent.vision.tracking import iou_matrix
from footfall.contract import AgeGroup, Direction, Gender, PersonEvent
from footfall.contract.vocab import age_group_index

F32 = npt.NDArray[np.float32]

MATCH_IOU = 0.3
VISIBLE_MIN = 0.5


class MissingExtraError(ImportError):
    """An optional dependency of the evaluation is missing; the message names the extra."""


@dataclass
class FrameTracks:
    """Confirmed tracks that took a detection in one frame."""

    track_ids: list[int]
    boxes: F32  # (N, 4)


@dataclass
class RunRecord:
    """What a scoring needs from one pipeline run."""

    events: list[PersonEvent] = field(default_factory=list)
    tracks: dict[int, FrameTracks] = field(default_factory=dict)  # detector frames only
    frames: int = 0
    wall_seconds: float = 0.0


@dataclass
class ScenarioScore:
    scenario: str
    config: str
    frames: int
    true_people: int
    faces_shown: int  # people whose face was at least half visible in some frame
    events: int
    true_in: int
    true_out: int
    true_passed: int
    counted_in: int
    counted_out: int
    counted_passed: int
    count_error: float  # |events - people| / people
    direction_count_error: float  # (|in - in*| + |out - out*| + |passed - passed*|) / people
    matched_people: int
    missed_people: int
    split_people: int
    spurious_events: int
    direction_accuracy: float | None
    id_switches: int
    fragmentations: int
    id_switches_per_100: float
    mota: float | None
    idf1: float | None
    gender_accuracy: float | None  # among matched people whose gender was given
    gender_unknown_share: float | None  # among matched people
    age_exact: float | None  # among matched people whose age group was given
    age_one_off: float | None
    age_unknown_share: float | None
    wall_seconds: float = 0.0
    realtime_factor: float = 0.0  # video seconds per wall-clock second (not a stable number)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _mot_metrics(
    gt_by_frame: dict[int, list[tuple[int, tuple[float, float, float, float], float]]],
    run: RunRecord,
) -> tuple[Counter[tuple[int, int]], dict[str, float]]:
    """Per-frame pairs (person, track) with counts, and the motmetrics summary."""
    try:
        import motmetrics as mm
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("scoring needs motmetrics: pip install 'footfall[dev]'") from exc
    acc = mm.MOTAccumulator(auto_id=False)
    pairs: Counter[tuple[int, int]] = Counter()
    for frame in sorted(run.tracks):
        tracks = run.tracks[frame]
        faces = gt_by_frame.get(frame, [])
        objects = [(pid, box) for pid, box, vis in faces if vis >= VISIBLE_MIN]
        ignore = [box for _, box, vis in faces if 0.0 < vis < VISIBLE_MIN]
        hyp_ids, hyp_boxes = list(tracks.track_ids), tracks.boxes
        obj_boxes = np.array([b for _, b in objects], np.float32).reshape(-1, 4)
        iou = iou_matrix(obj_boxes, hyp_boxes)
        if ignore and len(hyp_ids):
            ign = iou_matrix(np.array(ignore, np.float32), hyp_boxes).max(axis=0)
            best_real = iou.max(axis=0) if len(objects) else np.zeros(len(hyp_ids))
            keep = ~((ign >= MATCH_IOU) & (ign > best_real))
            hyp_ids = [h for h, k in zip(hyp_ids, keep.tolist(), strict=True) if k]
            iou = iou[:, keep]
        dist = np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan)
        acc.update([pid for pid, _ in objects], hyp_ids, dist, frameid=frame)
        if len(objects) and len(hyp_ids):
            cost = np.where(iou >= MATCH_IOU, 1.0 - iou, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if cost[r, c] < 1e6:
                    pairs[(objects[r][0], hyp_ids[c])] += 1
    mh = mm.metrics.create()
    summary = mh.compute(
        acc, metrics=["num_switches", "num_fragmentations", "mota", "idf1"], name="run"
    )
    values = {k: float(summary[k].iloc[0]) for k in summary.columns}
    return pairs, values


def score_run(gt: GroundTruth, run: RunRecord, *, config: str) -> ScenarioScore:
    gt_by_frame: dict[int, list[tuple[int, tuple[float, float, float, float], float]]] = (
        defaultdict(list)
    )
    for person in gt.people:
        for frame, box, vis in zip(person.frames, person.boxes, person.visible, strict=True):
            gt_by_frame[frame].append((person.id, box, vis))
    shown = {p.id for p in gt.people if any(v >= VISIBLE_MIN for v in p.visible)}
    pairs, mot = _mot_metrics(gt_by_frame, run)

    votes: dict[int, Counter[int]] = defaultdict(Counter)  # track -> person -> frames
    for (pid, tid), n in pairs.items():
        votes[tid][pid] += n
    owner: dict[int, tuple[int, int]] = {}  # track -> (person, frames)
    for tid, counter in votes.items():
        pid, n = counter.most_common(1)[0]
        owner[tid] = (pid, n)
    by_person: dict[int, list[tuple[int, PersonEvent]]] = defaultdict(list)
    spurious = 0
    for event in run.events:
        if event.track_id in owner:
            pid, n = owner[event.track_id]
            by_person[pid].append((n, event))
        else:
            spurious += 1

    truth = {p.id: p for p in gt.people}
    n_people = len(gt.people)
    direction_ok = gender_known = gender_ok = age_known = age_ok = age_near = 0
    split = 0
    for pid, items in by_person.items():
        person = truth[pid]
        if len(items) > 1:
            split += 1
        event = max(items, key=lambda item: item[0])[1]
        direction_ok += event.direction is person.direction
        if event.gender.label is not Gender.UNKNOWN:
            gender_known += 1
            gender_ok += event.gender.label is person.gender
        if event.age.group is not AgeGroup.UNKNOWN:
            age_known += 1
            gap = abs(age_group_index(event.age.group) - age_group_index(person.age_group))
            age_ok += gap == 0
            age_near += gap <= 1
    matched = len(by_person)

    true_dir = Counter(p.direction for p in gt.people)
    counted = Counter(e.direction for e in run.events)
    direction_error = sum(abs(counted[d] - true_dir[d]) for d in Direction)
    video_seconds = run.frames / gt.fps if gt.fps else 0.0
    return ScenarioScore(
        scenario=gt.spec.name,
        config=config,
        frames=run.frames,
        true_people=n_people,
        faces_shown=len(shown),
        events=len(run.events),
        true_in=true_dir[Direction.IN],
        true_out=true_dir[Direction.OUT],
        true_passed=true_dir[Direction.PASSED],
        counted_in=counted[Direction.IN],
        counted_out=counted[Direction.OUT],
        counted_passed=counted[Direction.PASSED],
        count_error=round(abs(len(run.events) - n_people) / n_people, 4) if n_people else 0.0,
        direction_count_error=round(direction_error / n_people, 4) if n_people else 0.0,
        matched_people=matched,
        missed_people=n_people - matched,
        split_people=split,
        spurious_events=spurious,
        direction_accuracy=_ratio(direction_ok, matched),
        id_switches=int(mot.get("num_switches", 0)),
        fragmentations=int(mot.get("num_fragmentations", 0)),
        id_switches_per_100=round(100 * mot.get("num_switches", 0) / n_people, 2)
        if n_people
        else 0.0,
        mota=_finite(mot.get("mota")),
        idf1=_finite(mot.get("idf1")),
        gender_accuracy=_ratio(gender_ok, gender_known),
        gender_unknown_share=_ratio(matched - gender_known, matched),
        age_exact=_ratio(age_ok, age_known),
        age_one_off=_ratio(age_near, age_known),
        age_unknown_share=_ratio(matched - age_known, matched),
        wall_seconds=round(run.wall_seconds, 2),
        realtime_factor=round(video_seconds / run.wall_seconds, 2) if run.wall_seconds else 0.0,
    )


def _finite(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 4)


__all__ = [
    "MATCH_IOU",
    "VISIBLE_MIN",
    "FrameTracks",
    "RunRecord",
    "ScenarioScore",
    "score_run",
]

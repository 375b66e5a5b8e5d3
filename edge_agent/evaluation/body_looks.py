"""How well the body descriptor tells walkers apart, measured on real clips with MOT truth: the
numbers behind :data:`edge_agent.vision.body_appearance.BODY_METRIC`.

    python -m edge_agent.evaluation.body_looks --clip ../shared/video/tud_stadtmitte.mp4 \\
        --clip ../shared/video/vtest.avi

Every ``--every``-th frame, the truth's boxes are described as the tracker would describe
detections. Pairs of the same person 0.3-5 s apart are "same"; pairs of two people seen within
5 s of each other are "strangers". For each part: the distance (``1 - similarity``) below which
5 % of strangers fall (the part's scale), the share of same-person pairs under it, and the
rank separation (AUC) of the part and of the combined distance.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from scipy.stats import mannwhitneyu

from edge_agent.evaluation.evaluate import video_frames
from edge_agent.evaluation.mot_truth import load_mot
from edge_agent.vision.appearance import (
    FACE_METRIC,
    PARTS,
    Descriptors,
    describe,
    distance_matrix,
    part_similarity,
)
from edge_agent.vision.body_appearance import BODY_METRIC, describe_bodies
from edge_agent.vision.people import head_boxes

F64 = npt.NDArray[np.float64]

_MIN_GAP, _MAX_GAP = 0.3, 5.0


@dataclass(frozen=True)
class Sample:
    person: int
    t: float
    looks: Descriptors


def samples(clip: Path, truth_path: Path, every: int, heads: bool) -> list[Sample]:
    truth = load_mot(truth_path)
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    out: list[Sample] = []
    for index, frame in video_frames(clip):
        if index % every:
            continue
        boxes, ids = truth.boxes_at(index), truth.ids_at(index)
        if not len(boxes):
            continue
        looks = describe(frame, head_boxes(boxes)) if heads else describe_bodies(frame, boxes)
        for i, pid in enumerate(ids.tolist()):
            one = Descriptors(
                looks.values[i : i + 1],
                looks.valid[i : i + 1],
                looks.edge[i : i + 1],
                looks.clipped[i : i + 1],
                looks.metric,
            )
            if not one.clipped[0]:
                out.append(Sample(int(pid), index / fps, one))
    return out


def auc(same: F64, strangers: F64) -> float:
    """P(a same-person distance < a stranger distance), ties counted half (Mann-Whitney)."""
    if not len(same) or not len(strangers):
        return float("nan")
    u = mannwhitneyu(strangers, same, alternative="greater").statistic
    return float(u / (len(same) * len(strangers)))


def pairs(all_samples: list[Sample]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    same, strangers = [], []
    for i, a in enumerate(all_samples):
        for j in range(i + 1, len(all_samples)):
            b = all_samples[j]
            gap = abs(b.t - a.t)
            if gap > _MAX_GAP:
                continue
            if a.person == b.person:
                if gap >= _MIN_GAP:
                    same.append((i, j))
            else:
                strangers.append((i, j))
    return same, strangers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, action="append", required=True)
    parser.add_argument("--every", type=int, default=5, help="describe every Nth frame")
    parser.add_argument(
        "--heads",
        action="store_true",
        help="measure the face descriptor laid out on each body's head box instead (the person mode's descriptor before the body one)",
    )
    args = parser.parse_args(argv)
    values: list[npt.NDArray[np.float32]] = []
    valid: list[npt.NDArray[np.bool_]] = []
    per_clip: list[tuple[str, int, int, int]] = []
    same_all: list[tuple[int, int]] = []
    strangers_all: list[tuple[int, int]] = []
    for clip in args.clip:
        truth = clip.with_name(clip.stem + ".gt.txt")
        found = samples(clip, truth, args.every, args.heads)
        same, strangers = pairs(found)
        base = len(values)
        same_all += [(i + base, j + base) for i, j in same]
        strangers_all += [(i + base, j + base) for i, j in strangers]
        values += [s.looks.values[0] for s in found]
        valid += [s.looks.valid[0] for s in found]
        per_clip.append((clip.name, len(found), len(same), len(strangers)))
    v, ok = np.stack(values), np.stack(valid)
    for name, n, ns, nd in per_clip:
        print(f"{name}: {n} looks, {ns} same-person pairs, {nd} stranger pairs")
    print("| part | scale (5 % of strangers) | same-person under it | AUC |")
    print("|---|---:|---:|---:|")
    for k, part in enumerate(PARTS):

        def dist(pp: list[tuple[int, int]], k: int = k) -> F64:
            keep = [(i, j) for i, j in pp if ok[i, k] and ok[j, k]]
            return np.array(
                [1.0 - part_similarity(v[i : i + 1], v[j : j + 1])[0, 0, k] for i, j in keep]
            )

        same_d, stranger_d = dist(same_all), dist(strangers_all)
        scale = float(np.quantile(stranger_d, 0.05)) if len(stranger_d) else float("nan")
        under = float((same_d <= scale).mean()) if len(same_d) else float("nan")
        print(f"| {part} | {scale:.3f} | {100 * under:.0f} % | {auc(same_d, stranger_d):.3f} |")

    metric = FACE_METRIC if args.heads else BODY_METRIC

    def combined(pp: list[tuple[int, int]]) -> F64:
        d = [
            distance_matrix(v[i : i + 1], ok[i : i + 1], v[j : j + 1], ok[j : j + 1], metric)[0, 0]
            for i, j in pp
        ]
        a = np.array(d, np.float64)
        return np.asarray(a[np.isfinite(a)], np.float64)

    same_c, stranger_c = combined(same_all), combined(strangers_all)
    print(
        f"combined: AUC {auc(same_c, stranger_c):.3f}; same-person median "
        f"{np.median(same_c):.2f}, 95th pct {np.quantile(same_c, 0.95):.2f}; strangers 5th pct "
        f"{np.quantile(stranger_c, 0.05):.2f}, median {np.median(stranger_c):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

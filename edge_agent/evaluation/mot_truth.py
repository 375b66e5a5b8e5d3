"""MOTChallenge ground truth (``frame, id, left, top, width, height, conf, ...``; frames 1-based):
read once into per-frame arrays, and the line crossings of its tracks.

A malformed line is an error naming the file and the line: a silently skipped row would make
every score computed from the file wrong without saying so.
"""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class TruthError(Exception):
    """A ground-truth file that cannot be read; the message names it and the line."""


@dataclass(frozen=True)
class MotTruth:
    """Ground-truth boxes per 0-based frame: ``ids[f]`` (N,) and ``boxes[f]`` (N, 4, x1 y1 x2 y2)."""

    ids: dict[int, I64]
    boxes: dict[int, F32]

    @property
    def people(self) -> set[int]:
        return {int(i) for ids in self.ids.values() for i in ids}

    def boxes_at(self, frame: int) -> F32:
        return self.boxes.get(frame, np.zeros((0, 4), np.float32))

    def ids_at(self, frame: int) -> I64:
        return self.ids.get(frame, np.zeros((0,), np.int64))

    def tracks(self) -> dict[int, list[tuple[int, F32]]]:
        """Each person's (frame, box) in frame order."""
        out: dict[int, list[tuple[int, F32]]] = defaultdict(list)
        for frame in sorted(self.ids):
            for pid, box in zip(self.ids[frame].tolist(), self.boxes[frame], strict=True):
                out[int(pid)].append((frame, box))
        return dict(out)


def load_mot(path: Path) -> MotTruth:
    """Read ``path``; rows with ``conf`` 0 (MOTChallenge's "ignore") are left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TruthError(f"cannot read ground truth {path}: {exc.strerror or exc}") from None
    rows: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            frame, pid = int(float(parts[0])), int(float(parts[1]))
            x, y, w, h = (float(v) for v in parts[2:6])
            conf = float(parts[6]) if len(parts) > 6 else 1.0
        except (ValueError, IndexError):
            raise TruthError(
                f"{path} line {number}: expected 'frame, id, left, top, width, height, ...' "
                f"(MOTChallenge), got {line.strip()[:60]!r}"
            ) from None
        if frame < 1:
            raise TruthError(f"{path} line {number}: frames are 1-based, got {frame}")
        if conf == 0:
            continue
        rows[frame - 1].append((pid, x, y, x + w, y + h))
    if not rows:
        raise TruthError(f"{path} holds no ground-truth boxes")
    ids = {f: np.array([r[0] for r in v], np.int64) for f, v in rows.items()}
    boxes = {f: np.array([r[1:] for r in v], np.float32).reshape(-1, 4) for f, v in rows.items()}
    return MotTruth(ids, boxes)

"""Drawing only: boxes, track ids, directions and the counting line onto frames (in person
mode also the faces, the one attached to each body in bold with its id), and writing them to a
video. Reads a :class:`~edge_agent.vision.pipeline.PipelineView`; decides nothing."""

import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.pipeline import PipelineView

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]

_LINE = (255, 0, 255)
_DETECTION = (160, 160, 160)
_CONFIRMED = (0, 200, 0)
_TENTATIVE = (0, 200, 255)
_PREDICTED = (0, 120, 255)
_FACE = (255, 200, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x), round(y)


class FrameAnnotator:
    """Draws a pipeline's view onto a frame (in place) and returns it."""

    def __init__(self, *, thickness: int = 2) -> None:
        if thickness < 1:
            raise ValueError(f"thickness must be >= 1, got {thickness}")
        self.thickness = thickness

    def draw(self, frame: U8, view: PipelineView) -> U8:
        t = self.thickness
        if view.line is not None:
            (x1, y1), (x2, y2) = view.line
            cv2.line(frame, _pt(x1, y1), _pt(x2, y2), _LINE, t)
        for box in view.detections.boxes:
            cv2.rectangle(frame, _pt(box[0], box[1]), _pt(box[2], box[3]), _DETECTION, 1)
        tracks = view.tracks
        for tid, box, confirmed, seen in zip(
            tracks.track_ids.tolist(),
            tracks.boxes,
            tracks.confirmed.tolist(),
            tracks.seen_now.tolist(),
            strict=True,
        ):
            colour = (_CONFIRMED if seen else _PREDICTED) if confirmed else _TENTATIVE
            cv2.rectangle(frame, _pt(box[0], box[1]), _pt(box[2], box[3]), colour, t)
            crossed = view.crossed.get(tid)
            label = f"#{tid}" + (f" {crossed.value}" if crossed else "")
            y = max(int(box[1]) - 4, 12)
            cv2.putText(frame, label, (int(box[0]), y), _FONT, 0.5, colour, 1, cv2.LINE_AA)
        if view.faces is not view.detections:  # person mode: faces apart from the bodies
            for box in view.faces.boxes:
                cv2.rectangle(frame, _pt(box[0], box[1]), _pt(box[2], box[3]), _FACE, 1)
            for tid, fi in view.attached.items():
                face = view.faces.boxes[fi]
                cv2.rectangle(frame, _pt(face[0], face[1]), _pt(face[2], face[3]), _FACE, t)
                cv2.putText(
                    frame, f"#{tid}", _pt(face[0], face[3] + 12), _FONT, 0.4, _FACE, 1, cv2.LINE_AA
                )
        return frame


class AnnotatedVideoWriter:
    """Writes frames to an MPEG-4 file, opened at the first frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: U8) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h)
            )
            if not writer.isOpened():
                raise OSError(f"{self.path}: cannot open a video writer")
            self._writer = writer
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

"""Drawing reads the pipeline's view and changes only pixels; the writer makes a playable file."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.vision.annotate import AnnotatedVideoWriter, FrameAnnotator
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.pipeline import Pipeline
from footfall.contract.topics import AgentAddress
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import Walker, face_image, timeline

START = datetime(2026, 5, 1, tzinfo=UTC)


def test_annotations_drawn_and_written(tmp_path: Path) -> None:
    frames = timeline([Walker("a", (100, 240), (150, 0), 0.0, 1.0, size=80)], fps=10, duration=1.0)
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
    )
    writer = AnnotatedVideoWriter(tmp_path / "out" / "clip.mp4", fps=10)
    annotator = FrameAnnotator()
    last = None
    for f in frames:
        image = np.zeros((480, 640, 3), np.uint8)
        pipe.step(face_image(640, 480, f.detections.boxes), START + timedelta(seconds=f.t))
        view = pipe.view()
        assert view is not None
        last = annotator.draw(image, view)
        writer.write(last)
    writer.close()
    assert last is not None
    # The counting line (vertical centre, magenta) and the confirmed track's green box are drawn.
    assert (last[10:470, 320] == (255, 0, 255)).all()
    assert (last.reshape(-1, 3) == (0, 200, 0)).all(axis=1).sum() > 100
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    cap.release()

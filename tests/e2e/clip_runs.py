"""Running the real pipeline over a shared clip frame by frame, keeping what the tests check:
the events, and for every track the frames in which it took a detection and its boxes."""

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.build import build_classifier, build_detector
from edge_agent.config import AgentConfig
from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.sources import VideoFileSource
from models.assets import ModelResolver

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@dataclass
class ClipRun:
    people: list[FinishedPerson]
    frames: int
    scene_cuts: int
    detected: list[int] = field(default_factory=list)  # frames on which the detector ran
    seen: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    boxes: dict[int, list[npt.NDArray[np.float32]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def detector_frames(self, first: int, last: int) -> int:
        """How many of frames first..last the detector ran on (the rest the tracker predicted)."""
        return sum(first <= f <= last for f in self.detected)

    def tracks_in(self, first: int, last: int, min_frames: int = 1) -> list[int]:
        """Confirmed tracks that took a detection in frames first..last (at least
        ``min_frames`` times)."""
        return sorted(
            tid
            for tid, frames in self.seen.items()
            if sum(first <= f <= last for f in frames) >= min_frames
        )


def config(**sections: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        # Face mode: these runs check face tracking on the shared clips (person mode is scored
        # by `eval mot` and the quality gate).
        {"site": "shared", "spot": "clip", "agent": "test", "mode": "face", **sections}
    )


def run_clip(models_dir: Path, clip: Path, cfg: AgentConfig | None = None) -> ClipRun:
    cfg = cfg or config()
    resolver = ModelResolver(models_dir=models_dir, allow_download=False)
    pipe = Pipeline.from_config(
        cfg,
        detector=build_detector(cfg.detector, resolver),
        classifier=build_classifier(cfg.classifier, resolver),
    )
    source = VideoFileSource(clip, START)
    run = ClipRun(people=[], frames=0, scene_cuts=0)
    try:
        for frame in source.frames(threading.Event()):
            runs = pipe.stats.detector_runs
            run.people += pipe.step(frame.image, frame.timestamp)
            if pipe.stats.detector_runs > runs:
                run.detected.append(frame.index)
            view = pipe.view()
            assert view is not None
            tracks = view.tracks
            for tid, box, confirmed, seen in zip(
                tracks.track_ids.tolist(),
                tracks.boxes,
                tracks.confirmed.tolist(),
                tracks.seen_now.tolist(),
                strict=True,
            ):
                if confirmed and seen:
                    run.seen[tid].append(frame.index)
                    run.boxes[tid].append(box)
            run.frames += 1
    finally:
        source.close()
    run.people += pipe.finish()
    run.scene_cuts = pipe.stats.scene_cuts
    return run

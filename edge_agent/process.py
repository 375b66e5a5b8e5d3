"""Running the pipeline over recorded clips into one sink: the library behind
``footfall-agent process``. Each clip gets its own pipeline (its own tracks, counting line and
time base); detector and classifier are loaded once and shared."""

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.annotate import AnnotatedVideoWriter, FrameAnnotator
from edge_agent.classify import FaceClassifier
from edge_agent.clips import ClipSpec
from edge_agent.config import AgentConfig
from edge_agent.detection import FaceDetector
from edge_agent.pipeline import FinishedPerson, Pipeline
from edge_agent.runner import run
from edge_agent.sinks import EventSink
from edge_agent.sources import SourceError, TimedFrame, VideoFileSource
from footfall.contract import Direction

log = logging.getLogger(__name__)

DEFAULT_AGENT = "local"


@dataclass
class ClipResult:
    clip: ClipSpec
    error: str | None = None
    frames: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0
    people: int = 0
    directions: dict[Direction, int] = field(default_factory=dict)
    unknown_gender: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0


def config_for_clip(base: AgentConfig | None, clip: ClipSpec) -> AgentConfig:
    """The configuration for one clip: the base file's sections with the clip's ids."""
    if base is None:
        return AgentConfig(site=clip.site, spot=clip.spot, agent=clip.agent or DEFAULT_AGENT)
    return base.model_copy(
        update={"site": clip.site, "spot": clip.spot, "agent": clip.agent or base.agent}
    )


def process_clip(
    clip: ClipSpec,
    config: AgentConfig,
    *,
    detector: FaceDetector,
    classifier: FaceClassifier,
    sink: EventSink,
    track_ids: Iterator[int],
    on_open: Callable[[int | None], None] | None = None,
    on_frame: Callable[[], None] | None = None,
    annotate_to: Path | None = None,
    stop: threading.Event | None = None,
) -> ClipResult:
    """Run one clip to the end. A clip that cannot be read is a result with ``error`` set, not
    an exception; errors of the sink (e.g. a full disk) do propagate."""
    result = ClipResult(clip)
    try:
        source = VideoFileSource(clip.path, clip.start)
    except SourceError as exc:
        result.error = str(exc)
        return result
    if on_open is not None:
        on_open(source.frame_count)
    pipeline = Pipeline.from_config(
        config, detector=detector, classifier=classifier, track_ids=track_ids
    )
    writer = AnnotatedVideoWriter(annotate_to, source.fps) if annotate_to is not None else None
    annotator = FrameAnnotator()

    def frame_done(frame: TimedFrame, finished: list[FinishedPerson]) -> None:
        if writer is not None:
            view = pipeline.view()
            if view is not None:
                writer.write(annotator.draw(frame.image.copy(), view))
        if on_frame is not None:
            on_frame()

    try:
        run_result = run(
            source,
            pipeline,
            sink,
            queue_frames=config.source.queue_frames,
            stop=stop,
            on_frame=frame_done,
        )
    finally:
        if writer is not None:
            writer.close()
    result.frames = run_result.frames_processed
    result.video_seconds = run_result.frames_processed / source.fps
    result.wall_seconds = run_result.wall_seconds
    result.people = pipeline.stats.people
    result.directions = dict(pipeline.stats.directions)
    result.unknown_gender = pipeline.stats.unknown_gender
    return result

"""Running the pipeline over recorded clips into one sink: the library behind
``footfall-agent process``. Each clip gets its own pipeline (its own tracks, counting line and
time base); detector and classifier are loaded once and shared."""

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.build import (
    build_classifier,
    build_detector,
    build_person_detector,
    resolver_for,
)
from edge_agent.clips import ClipSpec
from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.vision.annotate import AnnotatedVideoWriter, FrameAnnotator
from edge_agent.vision.counting import GeometryError
from edge_agent.vision.detection import FaceDetector
from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.runner import run
from edge_agent.vision.settings import PipelineMode
from edge_agent.vision.sinks import EventSink
from edge_agent.vision.sources import SourceError, TimedFrame, VideoFileSource
from footfall.contract import Direction
from models.runtime.classifier import FaceClassifier

if TYPE_CHECKING:
    from edge_agent.agent import Delivery

log = logging.getLogger(__name__)

DEFAULT_AGENT = "local"


@dataclass
class ClipResult:
    """What became of one clip. ``error``: it could not be processed at all; ``incomplete``:
    decoding stopped early, so only the part before the damage was processed (its people are
    kept). Either makes the clip not ``ok``."""

    clip: ClipSpec
    error: str | None = None
    incomplete: str | None = None
    frames: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0
    people: int = 0
    directions: dict[Direction, int] = field(default_factory=dict)
    unknown_gender: int = 0
    published: bool = False  # went to the broker through the agent's outbox, not to the sink
    left_in_outbox: int = 0  # events still waiting on this machine after the drain

    @property
    def ok(self) -> bool:
        return self.error is None and self.incomplete is None

    @property
    def processed(self) -> bool:
        """Frames went through the pipeline (all of them, or those before the damage)."""
        return self.error is None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0


def config_for_clip(base: AgentConfig | None, clip: ClipSpec) -> AgentConfig:
    """The configuration for one clip: its own config file if it names one, else the base
    file's sections, with the clip's ids."""
    if clip.config is not None:
        # A camera's own file may leave out the ids: the clip names them.
        ids = {"site": clip.site, "spot": clip.spot, "agent": clip.agent or DEFAULT_AGENT}
        base = load_agent_config(clip.config, defaults=ids)
    if base is None:
        return AgentConfig(site=clip.site, spot=clip.spot, agent=clip.agent or DEFAULT_AGENT)
    return base.model_copy(
        update={"site": clip.site, "spot": clip.spot, "agent": clip.agent or base.agent}
    )


def process_clips(
    specs: list[ClipSpec],
    base: AgentConfig | None,
    sink: EventSink,
    *,
    models_dir: Path | None = None,
    progress: bool = True,
    annotate: Path | None = None,
    on_result: Callable[[ClipResult], None] | None = None,
    spot_configs: Mapping[str, AgentConfig] | None = None,
    publish: bool = False,
) -> list[ClipResult]:
    """Run every clip into ``sink``, one after the other. Detector and classifier are built once
    from the first clip's configuration (raises :class:`BuildError`); a clip that cannot be read
    is a failed result and the others still run. ``spot_configs`` gives a spot its own
    configuration (e.g. a wider detection input for a camera far from the faces).

    With ``publish``, a clip whose configuration has an ``[mqtt]`` section goes to the fleet
    instead of ``sink``: through that agent's durable outbox to its broker (crops to its S3),
    drained before the next clip; what cannot be sent in time stays in the outbox under the
    agent's data_dir for ``footfall-agent deliver``."""
    from tqdm import tqdm

    from edge_agent.agent import AgentError

    def config_of(spec: ClipSpec) -> AgentConfig:
        own = (spot_configs or {}).get(spec.spot)
        return config_for_clip(own if own is not None else base, spec)

    first = config_of(specs[0])
    resolver = resolver_for(first, models_dir)
    detector = build_detector(first.detector, resolver)
    classifier = build_classifier(first.classifier, resolver)
    # One person detector per distinct setting (most surveys have one); face-mode clips need none.
    person_detectors: dict[str, FaceDetector] = {}

    def person_detector_for(config: AgentConfig) -> FaceDetector | None:
        if config.mode is not PipelineMode.PERSON:
            return None
        key = config.person.model_dump_json()
        if key not in person_detectors:
            person_detectors[key] = build_person_detector(config.person, resolver)
        return person_detectors[key]

    results: list[ClipResult] = []
    track_ids = itertools.count(1)
    for spec in specs:
        bar = tqdm(desc=spec.path.name, unit="frame", disable=not progress, leave=False)

        def opened(total: int | None, bar: tqdm = bar) -> None:
            bar.reset(total=total)

        try:
            config = config_of(spec)
            if config.detector != first.detector:
                detector = build_detector(config.detector, resolver)
            try:
                delivery = (
                    _delivery(config, classifier) if publish and config.mqtt is not None else None
                )
            except AgentError as exc:  # e.g. the broker's password file is missing
                failed = ClipResult(spec, error=f"{spec.path}: cannot publish: {exc}")
                results.append(failed)
                if on_result is not None:
                    on_result(failed)
                continue
            # A sender or uploader that cannot go on stops the clip; the outbox keeps the rest.
            halt = threading.Event()
            if delivery is not None:
                delivery.stop_on_failure(halt)
            try:
                result = process_clip(
                    spec,
                    config,
                    detector=detector,
                    person_detector=person_detector_for(config),
                    classifier=classifier,
                    sink=delivery.sink if delivery is not None else sink,
                    track_ids=track_ids,
                    on_open=opened,
                    on_frame=bar.update,
                    annotate_to=annotate / f"{spec.path.stem}.annotated.mp4" if annotate else None,
                    stop=halt,
                )
            finally:
                if delivery is not None:
                    drain = max(config.delivery.shutdown_drain_seconds, PUBLISH_DRAIN_SECONDS)
                    report = delivery.stop(drain)
            if delivery is not None:
                result.published = True
                result.left_in_outbox = report.events_left
                if delivery.failure is not None:
                    result.error = f"{spec.path}: publishing stopped: {delivery.failure}"
        finally:
            bar.close()
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


PUBLISH_DRAIN_SECONDS = 120.0
"""How long a published clip's events may take to reach the broker before the next clip."""


def _delivery(config: AgentConfig, classifier: FaceClassifier) -> "Delivery":
    from edge_agent.agent import Delivery

    delivery = Delivery(config, models=classifier.models)
    delivery.start()
    return delivery


def process_clip(
    clip: ClipSpec,
    config: AgentConfig,
    *,
    detector: FaceDetector,
    classifier: FaceClassifier,
    sink: EventSink,
    track_ids: Iterator[int],
    person_detector: FaceDetector | None = None,
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
        config,
        detector=detector,
        classifier=classifier,
        track_ids=track_ids,
        person_detector=person_detector,
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
    except GeometryError as exc:  # raised at the first frame, before anything was emitted
        result.error = f"{clip.path}: {exc}"
        return result
    finally:
        if writer is not None:
            writer.close()
    if not run_result.stopped:
        result.incomplete = source.shortfall()
    result.frames = run_result.frames_processed
    result.video_seconds = run_result.frames_processed / source.fps
    result.wall_seconds = run_result.wall_seconds
    result.people = pipeline.stats.people
    result.directions = dict(pipeline.stats.directions)
    result.unknown_gender = pipeline.stats.unknown_gender
    return result

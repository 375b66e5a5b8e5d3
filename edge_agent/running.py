"""Running an agent: the producer (the vision pipeline for ``run``, nothing for ``deliver``) in
this thread, the delivery side (:class:`edge_agent.agent.Delivery`) beside it, and the signal
handling that turns SIGTERM into "stop producing, drain what can be sent, exit". A second signal
cuts the drain short; a delivery loop that cannot go on stops the producer, and once the outbox
holds everything the run ends with :class:`~edge_agent.agent.AgentError`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from edge_agent.agent import AgentError, Delivery, DrainReport
from edge_agent.config import AgentConfig
from edge_agent.delivery.heartbeat import FrameMeter
from edge_agent.delivery.preflight import SetupError, check_delivery
from edge_agent.delivery.stream_clock import StreamClock
from edge_agent.remote_config import RemoteConfigManager
from edge_agent.vision.settings import PipelineMode
from edge_agent.vision.sinks import EventSink
from footfall.mqtt_link import LinkFactory
from footfall.objectstore import ObjectStore

if TYPE_CHECKING:
    from edge_agent.vision.detection import FaceDetector
    from edge_agent.vision.pipeline import FinishedPerson, Pipeline
    from edge_agent.vision.sources import FrameSource, TimedFrame
    from models.runtime.classifier import FaceClassifier

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(
    on_second: Callable[[], None] | None = None,
) -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT; a second one calls ``on_second`` (e.g. give
    up draining). The previous handlers come back afterwards. Main thread only."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("%s: stopping; what is accepted is kept in the outbox", name)
            stop.set()
        elif on_second is not None:
            log.warning("%s again: not waiting for the drain any longer", name)
            on_second()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_until_stopped(
    delivery: Delivery,
    produce: Callable[[EventSink, threading.Event], None],
    *,
    drain_seconds: float | None = None,
) -> DrainReport:
    """Start ``delivery``, run ``produce(sink, stop)`` in this thread until it returns, then
    drain and stop. SIGTERM/SIGINT set ``stop``: the producer should then finish what it holds
    (write it to the sink) and return. A second signal cuts the drain short."""
    drain = (
        delivery.config.delivery.shutdown_drain_seconds if drain_seconds is None else drain_seconds
    )
    with stop_on_signals(on_second=lambda: delivery.request_stop(0.0)) as stop:
        delivery.stop_on_failure(stop)
        delivery.start()
        try:
            produce(delivery.sink, stop)
        finally:
            report = delivery.stop(drain)
    _raise_failure(delivery)
    return report


def _raise_failure(delivery: Delivery) -> None:
    """After the drain, so that the outbox holds everything the producer had."""
    failure = delivery.failure
    if failure is not None:
        raise AgentError(failure)


def run_live(
    config: AgentConfig,
    *,
    models_dir: Path | None = None,
    start: datetime | None = None,
    realtime: bool = False,
    loop: bool = False,
) -> DrainReport:
    """The ``run`` command: the configured source through the vision pipeline into the outbox,
    events to MQTT and crops to S3, until the source ends or SIGTERM; then drain and stop.

    ``start`` is the wall-clock time of the first frame when the source is a video file;
    cameras and streams are stamped with the clock. A file's events and status messages are
    both on its footage's clock (:func:`footage_clock`), however fast it is read; ``realtime``
    reads it at its own pace, ``loop`` over and over with that clock running on (testing a
    deployment without a camera).
    """
    from edge_agent.build import (
        BuildError,
        build_classifier,
        build_detector,
        build_person_detector,
        resolver_for,
    )
    from edge_agent.vision.sources import SourceError, is_live_spec, open_source

    remote = RemoteConfigManager.load(config)
    config = remote.active
    if config.source.url is None:
        raise AgentError("source.url is not set: give the camera's RTSP/HTTP URL or index")
    if (realtime or loop) and is_live_spec(config.source.url):
        raise AgentError(
            "--realtime and --loop are for a video file; source.url is a camera or a stream"
        )
    try:
        # Before the models load and the camera opens: fail in a second, not after them.
        check_delivery(config)
    except SetupError as exc:
        raise AgentError(str(exc)) from None
    resolver = resolver_for(config, models_dir)
    try:
        detector = build_detector(config.detector, resolver)
        person_detector = (
            build_person_detector(config.person, resolver)
            if config.mode is PipelineMode.PERSON
            else None
        )
        classifier = build_classifier(config.classifier, resolver)
    except BuildError as exc:
        raise AgentError(str(exc)) from None
    try:
        source = open_source(
            config.source.url,
            start=start or datetime.now(UTC),
            reconnect_min_seconds=config.source.reconnect_min_seconds,
            reconnect_max_seconds=config.source.reconnect_max_seconds,
            realtime=realtime,
            loop=loop,
        )
    except (SourceError, ValueError) as exc:
        raise AgentError(str(exc)) from None
    return run_agent(
        config, source, detector, classifier, remote=remote, person_detector=person_detector
    )


def footage_clock(source: FrameSource) -> StreamClock | None:
    """The clock of a recorded clip's footage, which its status messages follow; None for a
    live source, whose frames and status messages carry the wall clock."""
    from edge_agent.vision.sources import VideoFileSource

    if not isinstance(source, VideoFileSource):
        return None
    return StreamClock(source.start, 1.0 / source.fps)


def run_agent(
    config: AgentConfig,
    source: FrameSource,
    detector: FaceDetector,
    classifier: FaceClassifier,
    *,
    remote: RemoteConfigManager | None = None,
    links: LinkFactory | None = None,
    store: ObjectStore | None = None,
    stop: threading.Event | None = None,
    on_pipeline: Callable[[Pipeline, Delivery], None] | None = None,
    person_detector: FaceDetector | None = None,
) -> DrainReport:
    """A running agent from its parts: ``source`` through the pipeline into the outbox, and
    delivery alongside, until the source ends, SIGTERM, or ``stop`` is set (tests; main thread
    not required then). ``on_pipeline`` sees the pipeline and the delivery once both exist.
    ``person_detector`` is needed when the configuration's mode is person."""
    from edge_agent.vision.pipeline import Pipeline
    from edge_agent.vision.runner import run

    remote = remote if remote is not None else RemoteConfigManager.load(config)
    config = remote.active
    pipeline = Pipeline.from_config(
        config, detector=detector, classifier=classifier, person_detector=person_detector
    )
    meter = FrameMeter(source_reconnects=lambda: source.reconnects, source=source.condition)
    footage = footage_clock(source)
    delivery = Delivery(
        config,
        models=[detector.model, *classifier.models],
        frames=meter.snapshot,
        links=links,
        store=store,
        remote=remote,
        stream_clock=footage,
    )
    delivery.attach_pipeline(pipeline)
    if on_pipeline is not None:
        on_pipeline(pipeline, delivery)

    def on_frame(frame: TimedFrame, finished: list[FinishedPerson]) -> None:
        meter.on_frame(frame, finished)
        if footage is not None:
            footage.on_frame(frame, finished)

    def produce(sink: EventSink, signalled: threading.Event) -> None:
        halt = stop if stop is not None else signalled
        delivery.stop_on_failure(halt)
        try:
            result = run(
                source,
                pipeline,
                sink,
                queue_frames=config.source.queue_frames,
                stop=halt,
                on_frame=on_frame,
            )
        finally:
            if footage is not None:
                # Whether the clip ended, the agent was stopped or the pipeline failed, the
                # footage is covered to the last frame processed: the sender sends the
                # heartbeat at that end before the offline status.
                footage.finish()
        log.info(
            "pipeline %s after %d frames (%d dropped): %d people",
            "stopped" if result.stopped else "reached the end of the source",
            result.frames_processed,
            result.frames_dropped,
            result.events,
        )

    if stop is not None:
        # Outside the main thread no signal handler can be installed: the test's event is
        # the only way to stop.
        delivery.start()
        try:
            produce(delivery.sink, threading.Event())
        finally:
            report = delivery.stop()
        _raise_failure(delivery)
        return report
    return run_until_stopped(delivery, produce)

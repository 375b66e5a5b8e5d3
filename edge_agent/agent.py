"""Wiring of a running agent's delivery side: the outbox, the MQTT sender, the crop uploader and
the status/heartbeat, started together and stopped together; and the signal handling that turns
SIGTERM into "stop producing, drain what can be sent, exit".

The producer (the vision pipeline for ``run``, nothing for ``deliver``) writes into
:attr:`Delivery.sink`, the outbox; everything after that is here.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from edge_agent.backoff import Backoff
from edge_agent.config import AgentConfig
from edge_agent.crop_uploader import CropUploader
from edge_agent.heartbeat import FrameCounters, FrameMeter, StatusBuilder
from edge_agent.mqtt_link import LinkFactory, paho_link_factory
from edge_agent.outbox import Outbox
from edge_agent.remote_config import RemoteConfigManager
from edge_agent.sender import EventSender
from edge_agent.sinks import EventSink
from footfall.contract import ModelRef
from footfall.objectstore import ObjectStore

if TYPE_CHECKING:
    from edge_agent.classify import FaceClassifier
    from edge_agent.detection import FaceDetector
    from edge_agent.pipeline import Pipeline
    from edge_agent.sources import FrameSource
    from footfall.health import HealthServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainReport:
    """What was left when the delivery side stopped (it stays in the outbox)."""

    events_left: int
    crops_left: int
    stopped_cleanly: bool  # every loop ended within its time

    @property
    def empty(self) -> bool:
        return self.events_left == 0 and self.crops_left == 0


class Delivery:
    """Outbox + sender + uploader + status of one agent.

    Without an ``[mqtt]`` section events stay in the outbox; without ``[s3]`` crops do (until
    the outbox cap drops them). ``links`` and ``store`` replace the real broker and object store
    (tests, benchmarks).

    ``remote`` holds the remote configuration (loaded from the data directory when not given);
    :attr:`config` is the configuration in effect, the file's with the remote one laid over it.
    With a broker, configs pushed to the agent's ``config`` topic are applied through it: the
    heartbeat interval here, the pipeline's settings once :meth:`attach_pipeline` was called.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        models: Sequence[ModelRef] = (),
        frames: Callable[[], FrameCounters] | None = None,
        links: LinkFactory | None = None,
        store: ObjectStore | None = None,
        remote: RemoteConfigManager | None = None,
    ) -> None:
        self.remote = remote if remote is not None else RemoteConfigManager.load(config)
        config = self.config = self.remote.active
        address = config.address
        d = config.delivery
        self._pipeline: Pipeline | None = None
        self.outbox = Outbox.open(config.data_dir, config.outbox)
        self.status = StatusBuilder(
            address,
            self.outbox,
            config_version=config.config_version,
            models=models,
            frames=frames,
        )
        self.sender: EventSender | None = None
        self.uploader: CropUploader | None = None
        errors: list[Callable[[], str | None]] = []
        try:
            if config.mqtt is not None:
                mqtt = config.mqtt
                self.sender = EventSender(
                    self.outbox,
                    links or paho_link_factory(mqtt, address.agent, inflight=d.inflight_window + 4),
                    address=address,
                    topic_prefix=mqtt.topic_prefix,
                    backoff=Backoff(mqtt.reconnect_min_seconds, mqtt.reconnect_max_seconds),
                    status=self.status,
                    heartbeat_seconds=d.heartbeat_seconds,
                    window=d.inflight_window,
                    config_handler=self.remote.handle,
                )
                sender = self.sender
                self.status.events_sent = lambda: sender.stats().events_sent
                errors.append(lambda: sender.stats().last_error)
            else:
                log.warning("no [mqtt] section: events stay in the outbox on this device")
            if config.s3 is not None or store is not None:
                if store is None:
                    from footfall.objectstore import S3ObjectStore

                    assert config.s3 is not None
                    store = S3ObjectStore(config.s3)
                self.uploader = CropUploader(
                    self.outbox,
                    store,
                    address=address,
                    backoff=Backoff(d.crop_retry_min_seconds, d.crop_retry_max_seconds),
                )
                uploader = self.uploader
                errors.append(lambda: uploader.stats().last_error)
            else:
                log.warning("no [s3] section: face crops stay in the outbox on this device")
        except BaseException:
            self.outbox.close()
            raise
        self.status.errors = errors
        self.remote.listeners.append(self._on_config)
        self.health: HealthServer | None = None
        self._started = False
        self._stopped = False

    def attach_pipeline(self, pipeline: Pipeline) -> None:
        """Remote configurations reach ``pipeline`` from now on; the heartbeat's
        ``config_version`` follows what the pipeline has actually switched to, and a counting
        line that does not fit its frames is rejected."""
        self._pipeline = pipeline
        self.remote.checks.append(pipeline.check_config)

    def _on_config(self, active: AgentConfig) -> None:
        self.config = active
        if self.sender is not None:
            self.sender.set_heartbeat_seconds(active.delivery.heartbeat_seconds)
        status = self.status

        def switched(config: AgentConfig) -> None:
            status.config_version = config.config_version

        if self._pipeline is not None:
            self._pipeline.request_config(active, on_applied=switched)
        else:
            switched(active)

    @property
    def sink(self) -> EventSink:
        """Where the producer puts events: the durable outbox."""
        return self.outbox

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        h = self.config.health
        if h.enabled and h.port is not None:
            from edge_agent.metrics import agent_readiness, agent_registry
            from footfall.health import HealthServer

            try:
                self.health = HealthServer(
                    agent_registry(self),
                    host=h.bind,
                    port=h.port,
                    ready=lambda: agent_readiness(self),
                ).start()
            except OSError as exc:
                raise AgentError(f"health.port {h.port} on {h.bind}: {exc.strerror}") from None
        for part in (self.sender, self.uploader):
            if part is not None:
                part.start()

    def request_stop(self, drain_seconds: float) -> None:
        """Ask every loop to finish within ``drain_seconds`` (0: as soon as possible)."""
        for part in (self.sender, self.uploader):
            if part is not None:
                part.request_stop(drain_seconds)

    def stop(self, drain_seconds: float | None = None) -> DrainReport:
        """Drain for up to ``drain_seconds`` (default from the config), stop, close the outbox."""
        if self._stopped:
            raise RuntimeError("Delivery.stop() called twice")
        self._stopped = True
        drain = (
            self.config.delivery.shutdown_drain_seconds if drain_seconds is None else drain_seconds
        )
        self.request_stop(drain)
        clean = True
        if self.sender is not None:
            clean = self.sender.stop(drain) and clean
        if self.uploader is not None:
            clean = self.uploader.stop(drain) and clean
        if not clean:
            log.error("a delivery loop did not stop in time; its work stays in the outbox")
        report = DrainReport(self.outbox.depth(), self.outbox.crops_pending(), clean)
        if self.health is not None:
            self.health.stop()
        if clean:
            # A loop that is still running may use the outbox; it is a daemon thread and dies
            # with the process, and SQLite keeps the file consistent either way.
            self.outbox.close()
        log.info(
            "delivery stopped: %d event(s) and %d crop(s) left in the outbox",
            report.events_left,
            report.crops_left,
        )
        return report

    def __enter__(self) -> Delivery:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._stopped:
            self.stop()


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
        delivery.start()
        try:
            produce(delivery.sink, stop)
        finally:
            report = delivery.stop(drain)
    return report


class AgentError(Exception):
    """The agent cannot start (no source, a model that does not load); one line, why."""


def run_live(
    config: AgentConfig,
    *,
    models_dir: Path | None = None,
    start: datetime | None = None,
) -> DrainReport:
    """The ``run`` command: the configured source through the vision pipeline into the outbox,
    events to MQTT and crops to S3, until the source ends or SIGTERM; then drain and stop.

    ``start`` is the wall-clock time of the first frame when the source is a video file (for a
    file played as if live); cameras and streams are stamped with the clock.
    """
    from edge_agent.build import BuildError, build_classifier, build_detector, resolver_for
    from edge_agent.sources import SourceError, open_source

    remote = RemoteConfigManager.load(config)
    config = remote.active
    if config.source.url is None:
        raise AgentError("source.url is not set: give the camera's RTSP/HTTP URL or index")
    resolver = resolver_for(config, models_dir)
    try:
        detector = build_detector(config.detector, resolver)
        classifier = build_classifier(config.classifier, resolver)
    except BuildError as exc:
        raise AgentError(str(exc)) from None
    try:
        source = open_source(
            config.source.url,
            start=start or datetime.now(UTC),
            reconnect_min_seconds=config.source.reconnect_min_seconds,
            reconnect_max_seconds=config.source.reconnect_max_seconds,
        )
    except (SourceError, ValueError) as exc:
        raise AgentError(str(exc)) from None
    return run_agent(config, source, detector, classifier, remote=remote)


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
) -> DrainReport:
    """A running agent from its parts: ``source`` through the pipeline into the outbox, and
    delivery alongside, until the source ends, SIGTERM, or ``stop`` is set (tests; main thread
    not required then). ``on_pipeline`` sees the pipeline and the delivery once both exist."""
    from edge_agent.pipeline import Pipeline
    from edge_agent.runner import run

    remote = remote if remote is not None else RemoteConfigManager.load(config)
    config = remote.active
    pipeline = Pipeline.from_config(config, detector=detector, classifier=classifier)
    meter = FrameMeter(source_reconnects=lambda: source.reconnects)
    delivery = Delivery(
        config,
        models=[detector.model, *classifier.models],
        frames=meter.snapshot,
        links=links,
        store=store,
        remote=remote,
    )
    delivery.attach_pipeline(pipeline)
    if on_pipeline is not None:
        on_pipeline(pipeline, delivery)

    def produce(sink: EventSink, signalled: threading.Event) -> None:
        halt = stop if stop is not None else signalled
        result = run(
            source,
            pipeline,
            sink,
            queue_frames=config.source.queue_frames,
            stop=halt,
            on_frame=meter.on_frame,
        )
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
        return report
    return run_until_stopped(delivery, produce)

"""Wiring of a running agent's delivery side: the outbox, the MQTT sender, the crop uploader and
the status/heartbeat, started together and stopped together; and the signal handling that turns
SIGTERM into "stop producing, drain what can be sent, exit".

The producer (the vision pipeline for ``run``, nothing for ``deliver``) writes into
:attr:`Delivery.sink`, the outbox; everything after that is here.

A sender or uploader that cannot go on (a file it needs is missing, or its thread died) reports
it to :class:`Delivery`, which sets the producer's stop event: the pipeline stops as on SIGTERM,
the people in view go into the outbox, the other loop drains what it can, and
:func:`run_until_stopped` raises :class:`AgentError` with the one line - the command exits 1 and
the supervisor (systemd ``Restart=always``) starts the agent again, which then reads the files
anew. The outbox keeps everything meanwhile. Files are also checked before anything starts
(:mod:`edge_agent.delivery.preflight`), so a broken configuration never opens the camera.
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

from edge_agent.config import AgentConfig
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.crop_uploader import CropUploader, ReopeningStore
from edge_agent.delivery.heartbeat import FrameCounters, FrameMeter, StatusBuilder
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.preflight import (
    SetupError,
    check_broker_files,
    check_delivery,
    check_store_credentials,
)
from edge_agent.delivery.sender import EventSender
from edge_agent.remote_config import RemoteConfigManager
from edge_agent.vision.sinks import EventSink
from footfall.connections import BrokerSettings
from footfall.contract import ModelRef
from footfall.mqtt_link import BrokerLink, LinkFactory, paho_link_factory
from footfall.objectstore import ObjectStore

if TYPE_CHECKING:
    from edge_agent.vision.detection import FaceDetector
    from edge_agent.vision.pipeline import Pipeline
    from edge_agent.vision.sources import FrameSource
    from footfall.health import HealthServer
    from models.runtime.classifier import FaceClassifier

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

    Raises :class:`AgentError` (one line) when a file the real broker link or object store needs
    cannot be used. :attr:`failure` is set once the sender or the uploader could not go on.
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
        try:
            # Before the outbox opens: a configuration that cannot work leaves nothing behind.
            if config.mqtt is not None and links is None:
                check_broker_files(config.mqtt)
            if config.s3 is not None and store is None:
                check_store_credentials(config.s3)
        except SetupError as exc:
            raise AgentError(str(exc)) from None
        self._failure: str | None = None
        self._failure_lock = threading.Lock()
        self._stop_on_failure: list[threading.Event] = []
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
                    links or _checked_links(mqtt, address.agent, inflight=d.inflight_window + 4),
                    address=address,
                    topic_prefix=mqtt.topic_prefix,
                    backoff=Backoff(mqtt.reconnect_min_seconds, mqtt.reconnect_max_seconds),
                    status=self.status,
                    heartbeat_seconds=d.heartbeat_seconds,
                    window=d.inflight_window,
                    config_handler=self.remote.handle,
                    confirm=d.confirm,
                    receipt_timeout_seconds=d.receipt_timeout_seconds,
                    on_fatal=self._fatal,
                )
                sender = self.sender
                self.status.events_sent = lambda: sender.stats().events_sent
                errors.append(lambda: sender.stats().last_error)
            else:
                log.warning("no [mqtt] section: events stay in the outbox on this device")
            if config.s3 is not None or store is not None:
                if store is None:
                    assert config.s3 is not None
                    store = _s3_store(config)
                self.uploader = CropUploader(
                    self.outbox,
                    store,
                    address=address,
                    backoff=Backoff(d.crop_retry_min_seconds, d.crop_retry_max_seconds),
                    on_fatal=self._fatal,
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

    @property
    def failure(self) -> str | None:
        """Why the sender or the uploader could not go on (the first one), or None."""
        with self._failure_lock:
            return self._failure

    def stop_on_failure(self, event: threading.Event) -> None:
        """Set ``event`` when the sender or the uploader cannot go on (at once if one could
        not already): how the producer learns that it must stop."""
        with self._failure_lock:
            self._stop_on_failure.append(event)
            failed = self._failure is not None
        if failed:
            event.set()

    def _fatal(self, message: str) -> None:
        # Called from the sender's or the uploader's own thread, once each at most.
        with self._failure_lock:
            if self._failure is None:
                self._failure = message
            events = list(self._stop_on_failure)
        # The loop that failed has logged why; this is what happens next.
        log.error("stopping the agent; what it has not delivered stays in the outbox")
        for event in events:
            event.set()

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


class AgentError(Exception):
    """The agent cannot start (no source, a model that does not load, a file its delivery needs)
    or its delivery cannot go on; one line, why."""


def _checked_links(settings: BrokerSettings, client_id: str, *, inflight: int) -> LinkFactory:
    """Paho links, each made only after the broker's files passed the start-up checks again:
    the sender then fails with the line naming the file, not with paho's own error."""
    make = paho_link_factory(settings, client_id, inflight=inflight)

    def checked() -> BrokerLink:
        check_broker_files(settings)
        return make()

    return checked


def _s3_store(config: AgentConfig) -> ObjectStore:
    from footfall.objectstore import S3ObjectStore

    assert config.s3 is not None
    try:
        return ReopeningStore(config.s3, S3ObjectStore)
    except SetupError as exc:
        raise AgentError(str(exc)) from None
    except Exception as exc:  # boto3 refusing the settings; the checks should have caught it
        raise AgentError(
            f"s3: cannot set up the object store: {type(exc).__name__}: {exc}"
        ) from None


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
    from edge_agent.vision.sources import SourceError, open_source

    remote = RemoteConfigManager.load(config)
    config = remote.active
    if config.source.url is None:
        raise AgentError("source.url is not set: give the camera's RTSP/HTTP URL or index")
    try:
        # Before the models load and the camera opens: fail in a second, not after them.
        check_delivery(config)
    except SetupError as exc:
        raise AgentError(str(exc)) from None
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
    from edge_agent.vision.pipeline import Pipeline
    from edge_agent.vision.runner import run

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
        delivery.stop_on_failure(halt)
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
        _raise_failure(delivery)
        return report
    return run_until_stopped(delivery, produce)

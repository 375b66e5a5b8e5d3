"""Wiring of a running agent's delivery side: the outbox, the MQTT sender, the crop uploader and
the status/heartbeat, started together and stopped together. Running it with a producer, the
signals and the drain is :mod:`edge_agent.running`.

The producer (the vision pipeline for ``run``, nothing for ``deliver``) writes into
:attr:`Delivery.sink`, the outbox; everything after that is here.

A sender or uploader that cannot go on (a file it needs is missing, or its thread died) reports
it to :class:`Delivery`, which sets the producer's stop event: the pipeline stops as on SIGTERM,
the people in view go into the outbox, the other loop drains what it can, and
:func:`edge_agent.running.run_until_stopped` raises :class:`AgentError` with the one line - the
command exits 1 and
the supervisor (systemd ``Restart=always``) starts the agent again, which then reads the files
anew. The outbox keeps everything meanwhile. Files are also checked before anything starts
(:mod:`edge_agent.delivery.preflight`), so a broken configuration never opens the camera.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_agent.config import AgentConfig
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.crop_uploader import CropUploader, ReopeningStore
from edge_agent.delivery.heartbeat import FrameCounters, StatusBuilder
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.preflight import (
    SetupError,
    check_broker_files,
    check_data_dir,
    check_store_credentials,
)
from edge_agent.delivery.sender import EventSender
from edge_agent.delivery.stream_clock import StreamClock
from edge_agent.remote_config import RemoteConfigManager
from edge_agent.vision.sinks import EventSink
from footfall.connections import BrokerSettings
from footfall.contract import ModelRef
from footfall.mqtt_link import BrokerLink, LinkFactory, paho_link_factory
from footfall.objectstore import ObjectStore

if TYPE_CHECKING:
    from edge_agent.vision.pipeline import Pipeline
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
    (tests, benchmarks). ``stream_clock`` is given when the source is a recorded clip: the
    status messages then carry the footage's time (:mod:`edge_agent.delivery.stream_clock`).

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
        stream_clock: StreamClock | None = None,
    ) -> None:
        self.remote = remote if remote is not None else RemoteConfigManager.load(config)
        config = self.config = self.remote.active
        address = config.address
        d = config.delivery
        try:
            # Before the outbox opens: a configuration that cannot work leaves nothing behind.
            check_data_dir(config)
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
            stream_clock=stream_clock,
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
                    config_handler=self.remote.answer,
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
        """Remote configurations reach ``pipeline`` from now on (it switches at its next frame),
        and a counting line that does not fit its frames is rejected."""
        self._pipeline = pipeline
        self.remote.checks.append(pipeline.check_config)

    def _on_config(self, active: AgentConfig) -> None:
        self.config = active
        if self.sender is not None:
            self.sender.set_heartbeat_seconds(active.delivery.heartbeat_seconds)
        # Reported at once (the sender publishes the status right after its answer): the
        # configuration is accepted and saved, and the pipeline's next frame runs it. Waiting
        # for that frame would report nothing while the camera is down.
        self.status.config_version = active.config_version
        if self._pipeline is not None:
            self._pipeline.request_config(active)

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

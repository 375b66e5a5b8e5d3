"""The agent's Prometheus metrics, read at scrape time from the counters the agent keeps anyway
(the heartbeat's statistics, the outbox, the sender, the uploader, the remote configuration).

Every name starts with ``footfall_agent_``; counters end in ``_total``, times in ``_seconds``,
sizes in ``_bytes``. Counters of events and frames are since the process started (like the
heartbeat); Prometheus handles the reset at a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.registry import Collector, CollectorRegistry

from edge_agent.delivery.heartbeat import FrameCounters
from edge_agent.delivery.sender import LinkState
from footfall import __version__
from footfall.contract import SourceState
from footfall.metrics import Families, registry_of

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from edge_agent.config import AgentConfig
    from edge_agent.delivery.crop_uploader import CropUploader
    from edge_agent.delivery.heartbeat import StatusBuilder
    from edge_agent.delivery.outbox import Outbox
    from edge_agent.delivery.sender import EventSender
    from edge_agent.remote_config import RemoteConfigManager

log = logging.getLogger(__name__)

M = Families("footfall_agent_")


class DeliveryParts(Protocol):
    """What the metrics read: the parts of a running agent's delivery side
    (:class:`edge_agent.agent.Delivery`), named here so that this module does not import the
    wiring that starts it."""

    config: AgentConfig
    status: StatusBuilder
    outbox: Outbox
    sender: EventSender | None
    uploader: CropUploader | None
    remote: RemoteConfigManager


class AgentCollector(Collector):
    def __init__(self, delivery: DeliveryParts) -> None:
        self.delivery = delivery

    def collect(self) -> Iterator[Metric]:
        d = self.delivery
        address = d.config.address
        yield M.info(
            "Who this agent is and what it runs",
            {
                "site": address.site,
                "spot": address.spot,
                "agent": address.agent,
                "software_version": __version__,
                "config_version": d.status.config_version or "",
            },
        )
        try:
            stats = d.status.stats()
            outbox = d.outbox.status()
        except Exception as exc:  # the outbox closes at shutdown; a scrape then gets the rest
            log.debug("outbox metrics unavailable: %s", exc)
        else:
            yield M.gauge(
                "uptime_seconds", "Seconds since the agent process started", stats.uptime_seconds
            )
            yield M.counter("frames_read", "Frames read from the source", stats.frames_in)
            yield M.counter(
                "frames_processed", "Frames that went through the pipeline", stats.frames_processed
            )
            yield M.counter(
                "frames_dropped",
                "Frames dropped because processing fell behind",
                stats.frames_dropped,
            )
            yield M.gauge(
                "frames_per_second", "Processed frames per second, recent average", stats.fps
            )
            yield M.counter(
                "source_reconnects", "Times the video source was reopened", stats.source_reconnects
            )
            if stats.source_state is not None:
                # A counter of reopens says nothing about whether frames arrive now.
                yield M.gauge(
                    "source_delivering",
                    "1 while the video source delivers frames",
                    stats.source_state is SourceState.DELIVERING,
                )
            yield M.counter(
                "events_emitted", "PersonEvents produced by the pipeline", stats.events_emitted
            )
            yield M.counter(
                "events_sent", "PersonEvents acknowledged by the broker", stats.events_sent
            )
            yield M.gauge("outbox_events", "Events waiting in the outbox", outbox.depth)
            yield M.gauge("outbox_crops", "Face crops waiting for upload", outbox.crops_pending)
            yield M.gauge("outbox_bytes", "Bytes of events and crops in the outbox", outbox.bytes)
            yield M.gauge("outbox_max_bytes", "Cap of the outbox", outbox.max_bytes)
            yield M.gauge(
                "outbox_oldest_event_age_seconds",
                "Age of the oldest event not yet acknowledged (0 when none)",
                outbox.oldest_unsent_age_seconds or 0.0,
            )
            yield M.counter(
                "crops_dropped",
                "Face crops dropped to keep the outbox in its cap",
                stats.crops_dropped,
            )
        if d.sender is not None:
            s = d.sender.stats()
            yield M.gauge(
                "mqtt_connected", "1 while connected to the broker", s.state is LinkState.CONNECTED
            )
            yield M.counter("mqtt_connects", "Successful connections to the broker", s.connects)
            yield M.counter(
                "mqtt_connect_failures", "Failed connection attempts", s.connect_failures
            )
            yield M.counter(
                "mqtt_connections_lost", "Connections lost after being made", s.connections_lost
            )
            yield M.counter(
                "mqtt_publish_denied", "Event publishes the broker refused (ACL)", s.publish_denied
            )
            yield M.counter(
                "mqtt_publish_unrouted",
                "Event publishes the broker routed to no subscriber (no aggregator); kept",
                s.publish_unrouted,
            )
            yield M.counter(
                "events_republished",
                "Events published again after a reconnect or a denial",
                s.events_republished,
            )
            yield M.counter("receipts", "Receipts taken from aggregators", s.receipts)
            yield M.counter(
                "events_confirmed",
                "Events confirmed as stored (by a receipt, or the PUBACK with confirm = broker)",
                s.events_confirmed,
            )
            yield M.counter(
                "events_requeued",
                "Events acknowledged by the broker but not confirmed in time: published again",
                s.events_requeued,
            )
            yield M.counter("heartbeats", "Heartbeats published", s.heartbeats)
        if d.uploader is not None:
            u = d.uploader.stats()
            yield M.counter(
                "crops_uploaded", "Face crops stored in the object store", u.crops_uploaded
            )
            yield M.counter(
                "crop_upload_failures", "Failed crop uploads (retried)", u.upload_failures
            )
            yield M.counter(
                "crops_corrupt",
                "Crops not uploaded: bytes no longer match their sha256",
                u.crops_corrupt,
            )
        yield M.counters_by(
            "config_results",
            "Remote configurations answered, by outcome",
            "outcome",
            {outcome: d.remote.outcomes.get(outcome, 0) for outcome in ("applied", "rejected")},
        )


def agent_registry(delivery: DeliveryParts) -> CollectorRegistry:
    return registry_of(AgentCollector(delivery))


STALE_FRAME_SECONDS = 30.0
"""A source that says it delivers but whose last frame was processed longer ago than this is
not ready: a stream can hang without an error (a stalled read)."""


def source_problem(frames: FrameCounters) -> str | None:
    """Why the video source makes the agent not ready, or None (no source, or frames flow)."""
    state = frames.source_state
    if state is None:
        return None
    if state is SourceState.STARTING:
        return "video source starting: no frame yet"
    if state is SourceState.RECONNECTING:
        return "video source reconnecting" + (
            f": {frames.source_error}" if frames.source_error else ""
        )
    if state is SourceState.ENDED:
        return "video source ended"
    since = frames.seconds_since_frame
    if since is not None and since > STALE_FRAME_SECONDS:
        return f"no frame from the video source for {since:.0f} s"
    return None


def agent_readiness(delivery: DeliveryParts) -> str | None:
    """Ready when the video source delivers frames (if there is one) and the agent is
    connected to the broker (if there is one to connect to)."""
    problems = [source_problem(delivery.status.frame_counters())]
    if delivery.sender is not None:
        stats = delivery.sender.stats()
        if stats.state is not LinkState.CONNECTED:
            problems.append(
                f"MQTT {stats.state.value}" + (f": {stats.last_error}" if stats.last_error else "")
            )
    found = [p for p in problems if p is not None]
    return "; ".join(found) if found else None

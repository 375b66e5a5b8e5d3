"""Moving events from the outbox to the broker: connect, publish in seq order with a bounded
in-flight window, mark each event published on its PUBACK, reconnect with backoff.

Why this module stays whole (about 570 lines): the per-connection session (:class:`_Session`)
is the sender's loop seen from one connection. At every step it reads and updates the sender's
settings, counters, backoffs and high-water mark - two dozen of them - so a module boundary
between the two would need a protocol as wide as the sender itself. What the sender shares with
the crop uploader (its thread, the stop and drain, the fatal-error rule) is
:mod:`edge_agent.delivery.worker`.

What is guaranteed, precisely:

- **No loss**: an event leaves the outbox only after an aggregator's receipt says it is committed
  to the store (``delivery.confirm = "receipt"``, the default), or, with ``confirm = "broker"``,
  after the broker's QoS 1 PUBACK with reason code Success. Anything else - a lost connection, a
  crash of the agent, the broker or an aggregator, a denial - leaves it there, and it is
  published again: at once after a reconnect for what the broker never acknowledged, and after
  ``receipt_timeout_seconds`` without any receipt for what it acknowledged but nobody confirmed
  (the wait doubles while no receipt comes, so a long aggregator outage does not flood the
  broker's queue with copies).
- **At least once**: after a reconnect every event not yet acknowledged is published again, so
  the broker (and the aggregator) may see an event twice; the aggregator stores by event id.
- **Order**: within one connection events are published in seq order (the order the pipeline
  emitted them), and the broker forwards one publisher's messages in order. Across a reconnect
  the re-published events start again from the oldest unacknowledged one, so a consumer may
  receive an older event after newer ones of the previous connection. Nothing is promised about
  arrival order beyond that; the event's own timestamps are what counts downstream.

Only a PUBACK with reason code 0 (Success) counts as delivered. Two other answers leave the
event in the outbox, pause publishing with backoff and retry from that event; each is reported
(log line, counter, ``last_error`` in the heartbeat):

- a failure code (MQTT 5 "Not authorized" when the ACL denies the topic);
- 0x10 "No matching subscribers": the broker took the message and routed it to nobody. This is
  what an MQTT 5 broker answers while no aggregator holds the events subscription - after a broker
  restart that lost the aggregators' shared-subscription sessions, before the first aggregator
  ever connected, or after every aggregator left. Counting it as delivered loses the event for
  good, so it is treated as "not yet": the sender probes with one event at a time until the
  broker routes one again, then resumes the full window.

Heartbeats keep flowing meanwhile, so the fleet sees the problem too (if the ACL lets the
heartbeat through; an unrouted heartbeat is simply gone, the next one replaces it).

Heartbeats go out every ``heartbeat_seconds`` of this loop's clock while connected, except for an
agent reading a recorded clip: the status source then says which are due on the footage's clock
(:mod:`edge_agent.delivery.stream_clock`), one per ``heartbeat_seconds`` of footage processed,
and those the footage passed while the broker was away go out after the reconnect.

What is retried and what ends the sender: everything the broker or the network says (unreachable,
TLS refused, credentials refused, a lost connection) is retried for ever with backoff; each of
those can be fixed without touching the agent. A link that cannot even be built - the CA or
password file is missing, unreadable or empty, which the link factory finds before any network
traffic - is fatal: retrying cannot help, so the loop ends with state ``failed`` and hands one
line to ``on_fatal``, and the agent stops and exits non-zero for its supervisor to restart it once
the file is there. So does anything else that escapes the loop: a sender that died must never
leave an agent running that looks alive. The events stay in the outbox either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from edge_agent.config import Confirmation
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.heartbeat import StatusSource
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.preflight import SetupError
from edge_agent.delivery.worker import DeliveryWorker, one_line
from edge_agent.remote_config import ConfigAnswer
from footfall.contract import (
    MAX_RECEIPT_BYTES,
    AgentState,
    ContractError,
    FieldError,
    Receipt,
    decode,
)
from footfall.contract.topics import AgentAddress, Channel
from footfall.mqtt_link import (
    Ack,
    BrokerLink,
    BrokerRefusedError,
    LastWill,
    LinkError,
    LinkFactory,
    TlsError,
)

log = logging.getLogger(__name__)

_OFFLINE_ACK_SECONDS = 2.0
_UNROUTED_MAX_SECONDS = 5.0
_REQUEUE_CHECK_SECONDS = 1.0
_REQUEUE_MAX_SECONDS = 900.0
_OVERDUE_MULTIPLE = 10.0
_DRAIN_REQUEUE_SECONDS = 2.0


class LinkState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    TLS_ERROR = "tls-error"
    REFUSED = "refused"
    DISCONNECTED = "disconnected"
    FAILED = "failed"  # cannot go on (see the module docstring); the agent stops
    STOPPED = "stopped"


@dataclass(frozen=True)
class SenderStats:
    state: LinkState = LinkState.STARTING
    last_error: str | None = None
    connects: int = 0
    connect_failures: int = 0
    connections_lost: int = 0
    events_sent: int = 0  # acknowledged by the broker in this process
    events_republished: int = 0  # published again after a reconnect or a denial
    publish_denied: int = 0
    publish_unrouted: int = 0  # event publishes answered "No matching subscribers"
    receipts: int = 0  # receipts taken from aggregators
    events_confirmed: int = 0  # events those receipts (or, confirm=broker, PUBACKs) confirmed
    events_requeued: int = 0  # published, no receipt in time: published again
    heartbeats: int = 0
    config_results: int = 0  # answers published to config messages


ConfigHandler = Callable[[bytes], ConfigAnswer]


class LinkSetupError(Exception):
    """No link can be built from the settings; the message is one line saying why (naming the
    setting and the file when the factory raised :class:`~edge_agent.delivery.preflight.SetupError`)."""


class EventSender(DeliveryWorker[SenderStats]):
    """The publishing loop; runs in its own thread (:meth:`start`) or the caller's (:meth:`run`).
    Asked to stop, it publishes until the outbox is empty or the drain ends, then the offline
    status, and disconnects."""

    thread_name = "mqtt-sender"
    title = "MQTT sender"
    fatal_errors = (LinkSetupError,)
    # The offline status and one connect timeout on top of the drain.
    stop_grace_seconds = _OFFLINE_ACK_SECONDS + 15.0

    def __init__(
        self,
        outbox: Outbox,
        links: LinkFactory,
        *,
        address: AgentAddress,
        topic_prefix: str,
        backoff: Backoff,
        status: StatusSource | None = None,
        heartbeat_seconds: float = 60.0,
        window: int = 100,
        idle_poll_seconds: float = 0.05,
        config_handler: ConfigHandler | None = None,
        confirm: Confirmation = Confirmation.RECEIPT,
        receipt_timeout_seconds: float = 30.0,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        """``config_handler``: called with each message of the agent's ``config`` topic (which
        is subscribed to on every connection when given); its result is published retained on
        ``config-result``, what it restores retained on ``config``, then the status at once. ``on_fatal``: called once, from the sender's thread, with one line
        saying why the sender cannot go on (see the module docstring)."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if heartbeat_seconds <= 0:
            raise ValueError(f"heartbeat_seconds must be > 0, got {heartbeat_seconds}")
        if receipt_timeout_seconds <= 0:
            raise ValueError(f"receipt_timeout_seconds must be > 0, got {receipt_timeout_seconds}")
        super().__init__(SenderStats(), on_fatal)
        self._confirm = Confirmation(confirm)
        self._receipt_timeout = receipt_timeout_seconds
        self._address = address
        self._outbox = outbox
        self._links = links
        self._status = status
        self._backoff = backoff
        self._deny_backoff = Backoff(backoff.min_seconds, backoff.max_seconds)
        # An aggregator that resubscribes after a broker restart takes a few seconds; probing
        # with one event is cheap, so the wait between probes stays short.
        self._unrouted_backoff = Backoff(
            backoff.min_seconds, min(backoff.max_seconds, _UNROUTED_MAX_SECONDS)
        )
        self._window = window
        self._heartbeat_seconds = heartbeat_seconds
        self._idle_poll = idle_poll_seconds
        self.events_topic = address.topic(topic_prefix, Channel.EVENTS)
        self.status_topic = address.topic(topic_prefix, Channel.STATUS)
        self.heartbeat_topic = address.topic(topic_prefix, Channel.HEARTBEAT)
        self.config_topic = address.topic(topic_prefix, Channel.CONFIG)
        self.config_result_topic = address.topic(topic_prefix, Channel.CONFIG_RESULT)
        self.receipts_topic = address.topic(topic_prefix, Channel.RECEIPTS)
        self._config_handler = config_handler
        self._high_water = 0  # highest seq published by this process

    # -- control --------------------------------------------------------------------------------

    def set_heartbeat_seconds(self, seconds: float) -> None:
        """A new heartbeat interval (remote configuration); a shorter one takes effect at once."""
        if seconds <= 0:
            raise ValueError(f"heartbeat_seconds must be > 0, got {seconds}")
        self._heartbeat_seconds = seconds
        self._clock.wake.set()

    def _finished(self) -> bool:
        if not self._clock.stopping.is_set():
            return False
        return self._clock.out_of_time() or not self._outbox.has_unconfirmed()

    # -- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._finished():
            if self._attempt():
                break
            self._clock.sleep(self._backoff.next_delay())

    def _ended(self, failure: str | None) -> None:
        if failure is None:
            self._update(state=LinkState.STOPPED)
        else:
            self._update(state=LinkState.FAILED, last_error=failure)

    def _attempt(self) -> bool:
        """One connection, start to end; True when the sender is done (stopped and drained)."""
        try:
            link = self._links()
        except Exception as exc:
            # Building a link reads the CA and password files and touches no network: the same
            # settings fail the same way every time.
            self._count("connect_failures")
            if isinstance(exc, SetupError):
                raise LinkSetupError(str(exc)) from exc
            raise LinkSetupError(
                f"cannot set up the MQTT connection: {type(exc).__name__}: {one_line(exc)}"
            ) from exc
        try:
            try:
                link.connect(self._will())
            except LinkError as exc:
                self._connect_failed(exc)
                return False
            self._backoff.reset()
            return _Session(self, link).run()
        except LinkError as exc:
            self._lost(str(exc))
        except Exception as exc:
            # The loop must outlive anything (a full disk under the outbox, a bug in a status
            # callback): events wait in the outbox and the next connection tries again.
            message = f"MQTT sender error: {type(exc).__name__}: {exc}"
            if message != self.stats().last_error:
                log.exception("%s; retrying", message)
            self._update(state=LinkState.DISCONNECTED, last_error=message)
        finally:
            link.close()
        return False

    def _will(self) -> LastWill | None:
        if self._status is None:
            return None
        offline = self._status.build(AgentState.OFFLINE, with_stats=False)
        return LastWill(self.status_topic, offline.to_json(), qos=1, retain=True)

    def _connect_failed(self, exc: LinkError) -> None:
        state = (
            LinkState.REFUSED
            if isinstance(exc, BrokerRefusedError)
            else LinkState.TLS_ERROR
            if isinstance(exc, TlsError)
            else LinkState.UNREACHABLE
        )
        message = str(exc)
        previous = self.stats().last_error
        self._count("connect_failures")
        self._update(state=state, last_error=message)
        # One clear line per distinct problem, not one per retry. An unreachable broker is
        # weather (it comes back); a TLS or credential refusal needs someone to fix something.
        if message != previous:
            level = logging.WARNING if state is LinkState.UNREACHABLE else logging.ERROR
            log.log(level, "%s", message)
        else:
            log.debug("still: %s", message)

    def _lost(self, reason: str) -> None:
        self._count("connections_lost")
        self._update(state=LinkState.DISCONNECTED, last_error=reason)
        log.warning("MQTT %s; reconnecting, events wait in the outbox", reason)

    def _unrouted(self, count: int, retry_in: float) -> str:
        return (
            f"the broker has no subscriber for {self.events_topic} (reason code 0x10 'No "
            f"matching subscribers': no aggregator holds the events subscription); {count} "
            f"event(s) not delivered stay in the outbox, probing again in {retry_in:.1f} s; "
            "check that an aggregator is running and connected to this broker"
        )

    def _denied(self, ack: Ack, topic: str, retry_in: float | None) -> str:
        retry = f"; the event stays in the outbox, retry in {retry_in:.1f} s" if retry_in else ""
        return (
            f"the broker denied a publish to {topic}: {ack.reason} (reason code "
            f"{ack.reason_code}){retry}; check the broker's ACL for this agent's user and its "
            "site/spot/agent ids"
        )


class _Session:
    """One connection's worth of publishing."""

    def __init__(self, sender: EventSender, link: BrokerLink) -> None:
        self.s = sender
        self.link = link
        limit = link.receive_maximum
        self.window = min(sender._window, limit) if limit else sender._window
        self.inflight: dict[int, int] = {}  # mid -> seq
        self.aux: dict[int, str] = {}  # mid -> topic of a status or heartbeat
        self.aux_denied: set[str] = set()
        self.cursor = 0  # highest seq handed to this connection (or skipped as in flight)
        self.paused_until = 0.0
        self.denying = False
        self.unrouted = False  # probing with one event until the broker routes one again
        now = time.monotonic()
        self.last_receipt = now  # a new connection gives receipts a full timeout to come
        self.requeue_wait = sender._receipt_timeout
        self.next_requeue_check = now + _REQUEUE_CHECK_SECONDS
        self.bad_receipt_logged = False

    def run(self) -> bool:
        """True when the sender was asked to stop and is done; False when the link was lost."""
        s = self.s
        s._update(state=LinkState.CONNECTED, last_error=None)
        s._count("connects")
        log.info("MQTT connected; publishing to %s (window %d)", s.events_topic, self.window)
        self._publish_status(AgentState.ONLINE)
        if s._config_handler is not None:
            # Every connection: the broker then sends the retained config, which is how an
            # agent that was away learns what was pushed meanwhile.
            self.link.subscribe(s.config_topic, 1)
        if s._confirm is Confirmation.RECEIPT:
            self.link.subscribe(s.receipts_topic, 1)
        interval = s._heartbeat_seconds
        next_beat = time.monotonic() + interval
        busy = True
        while True:
            acks = self.link.poll(0.0 if busy else s._idle_poll)
            busy = self._handle(acks) > 0
            busy = self._take_messages() > 0 or busy
            if not self.link.connected:
                s._lost(self.link.lost_reason or "connection lost")
                return False
            now = time.monotonic()
            if s._finished():
                return self._finish()
            if s._heartbeat_seconds != interval:
                interval = s._heartbeat_seconds
                next_beat = min(next_beat, now + interval)
            if not self._footage_heartbeats(interval) and now >= next_beat:
                self._publish_heartbeat()
                next_beat = now + interval
            if now >= self.next_requeue_check:
                self.next_requeue_check = now + _REQUEUE_CHECK_SECONDS
                self._requeue_overdue(now)
            if now >= self.paused_until:
                busy = self._fill() > 0 or busy

    def _handle(self, acks: list[Ack]) -> int:
        s = self.s
        done: list[int] = []
        denied: list[tuple[int, Ack]] = []
        unrouted: list[int] = []
        for ack in acks:
            seq = self.inflight.pop(ack.mid, None)
            if seq is None:
                topic = self.aux.pop(ack.mid, None)
                if topic is not None and ack.failed and topic not in self.aux_denied:
                    self.aux_denied.add(topic)  # once per connection, not every heartbeat
                    log.error("%s", s._denied(ack, topic, None))
                continue
            if ack.delivered:
                done.append(seq)
            elif ack.failed:
                denied.append((seq, ack))
            else:  # 0x10, or any other non-failure code that is not plain Success
                unrouted.append(seq)
        if done:
            broker_confirms = s._confirm is Confirmation.BROKER
            sent = s._outbox.mark_published(done, confirmed=broker_confirms)
            s._count("events_sent", sent)
            if broker_confirms:
                s._count("events_confirmed", sent)
            if self.denying:
                self.denying = False
                s._deny_backoff.reset()
                s._update(last_error=None)
                log.info("the broker accepts this agent's events again")
            if self.unrouted and not unrouted:
                self.unrouted = False
                s._unrouted_backoff.reset()
                s._update(last_error=None)
                log.info("the broker routes this agent's events to an aggregator again")
        if denied:
            self._on_denied(denied)
        if unrouted:
            self._on_unrouted(unrouted)
        return len(acks)

    def _take_messages(self) -> int:
        s = self.s
        messages = self.link.received()
        for message in messages:
            if message.topic == s.receipts_topic:
                self._take_receipt(message.payload)
                continue
            if s._config_handler is None or message.topic != s.config_topic:
                continue
            answer = s._config_handler(message.payload)
            if answer.result is not None:
                payload = answer.result.to_json()
                mid = self.link.publish(s.config_result_topic, payload, qos=1, retain=True)
                self.aux[mid] = s.config_result_topic
                s._count("config_results")
            if answer.restore is not None:
                mid = self.link.publish(s.config_topic, answer.restore, qos=1, retain=True)
                self.aux[mid] = s.config_topic
            if answer.result is not None:
                # The version in effect now, without waiting for the next heartbeat (which may
                # be an hour away) or for a frame (a camera that is down sends none).
                self._publish_status(AgentState.ONLINE)
        return len(messages)

    def _take_receipt(self, payload: bytes) -> None:
        s = self.s
        try:
            receipt = decode(Receipt, payload, max_bytes=MAX_RECEIPT_BYTES)
            addressed = (receipt.site, receipt.spot, receipt.agent)
            if addressed != (s._address.site, s._address.spot, s._address.agent):
                where = "/".join(addressed)
                raise ContractError([FieldError("agent", f"the receipt is for {where}")])
        except ContractError as exc:
            # Only aggregators may write here (ACL): a bad receipt is a bug to report, and the
            # events it meant stay until a good one (or the timeout) comes.
            if not self.bad_receipt_logged:
                self.bad_receipt_logged = True
                log.error("ignoring an invalid receipt on %s: %s", s.receipts_topic, exc)
            return
        confirmed = s._outbox.confirm(str(i) for i in receipt.event_ids)
        s._count("receipts")
        s._count("events_confirmed", confirmed)
        self.last_receipt = time.monotonic()
        self.requeue_wait = s._receipt_timeout

    def _requeue_overdue(self, now: float) -> None:
        """Publish again what the broker took but no aggregator confirmed in time: lost in a
        broker crash, in flight to an aggregator that died, or confirmed by a receipt that was
        itself lost (sent while this agent was reconnecting).

        While receipts keep coming the pipeline is only slow (a backlog being drained), so an
        event is sent again then only once it waited ``_OVERDUE_MULTIPLE`` timeouts; when none
        comes for a timeout, everything overdue goes again and the wait doubles. On the way out
        (the shutdown drain) a few seconds are enough: the copies fetch the receipts before the
        process ends."""
        s = self.s
        if s._confirm is not Confirmation.RECEIPT:
            return
        age = s._outbox.oldest_unconfirmed_age()
        if age is None:
            return
        if s._clock.stopping.is_set():
            wait = min(self.requeue_wait, _DRAIN_REQUEUE_SECONDS)
        elif now - self.last_receipt >= self.requeue_wait:
            wait = self.requeue_wait
        else:
            wait = s._receipt_timeout * _OVERDUE_MULTIPLE
        if age < wait:
            return
        n = s._outbox.requeue_unconfirmed(older_than_seconds=wait)
        if n:
            s._count("events_requeued", n)
            self.cursor = 0  # they are older than what this connection sent last
            log.warning(
                "no receipt for %d event(s) published more than %.0f s ago; publishing them "
                "again (the store keeps one copy of each)",
                n,
                wait,
            )
        if now - self.last_receipt >= self.requeue_wait:
            self.last_receipt = now
            self.requeue_wait = min(self.requeue_wait * 2, _REQUEUE_MAX_SECONDS)

    def _on_unrouted(self, seqs: list[int]) -> None:
        s = self.s
        s._count("publish_unrouted", len(seqs))
        self.cursor = min(self.cursor, min(seqs) - 1)
        now = time.monotonic()
        if now < self.paused_until:
            return
        delay = s._unrouted_backoff.next_delay()
        self.paused_until = now + delay
        message = s._unrouted(s._outbox.depth(), delay)
        s._update(last_error=message)
        if not self.unrouted:
            log.warning("%s", message)
        self.unrouted = True

    def _on_denied(self, denied: list[tuple[int, Ack]]) -> None:
        s = self.s
        s._count("publish_denied", len(denied))
        # Publish again from the oldest denied event; later ones still in flight are skipped
        # when the window refills, and re-sent only if they are denied too.
        self.cursor = min(self.cursor, min(seq for seq, _ in denied) - 1)
        now = time.monotonic()
        if now < self.paused_until:
            return  # the same episode: one backoff step per pause, not per denied message
        delay = s._deny_backoff.next_delay()
        self.paused_until = now + delay
        message = s._denied(denied[0][1], s.events_topic, delay)
        s._update(last_error=message)
        if not self.denying:
            log.error("%s", message)
        self.denying = True

    def _fill(self) -> int:
        s = self.s
        # While nobody subscribes, one event in flight is enough to notice the first aggregator.
        window = 1 if self.unrouted else self.window
        room = window - len(self.inflight)
        # Taking events is one write transaction (they are marked as handed out): refill in
        # steps of a quarter window rather than one event per PUBACK.
        if room <= 0 or (self.inflight and room < max(1, window // 4)):
            return 0
        sent = 0
        entries = s._outbox.take_unsent(room, after_seq=self.cursor, skip=self.inflight.values())
        for entry in entries:
            if not self.link.connected:
                break
            mid = self.link.publish(s.events_topic, entry.payload, qos=1)
            self.inflight[mid] = entry.seq
            self.cursor = entry.seq
            sent += 1
            if entry.seq <= s._high_water:
                s._count("events_republished")
            else:
                s._high_water = entry.seq
        return sent

    def _publish_status(self, state: AgentState) -> int | None:
        status = self.s._status
        if status is None:
            return None
        payload = status.build(state, with_stats=True).to_json()
        mid = self.link.publish(self.s.status_topic, payload, qos=1, retain=True)
        self.aux[mid] = self.s.status_topic
        return mid

    def _publish_heartbeat(self, at: datetime | None = None) -> None:
        status = self.s._status
        if status is None:
            return
        payload = status.build(AgentState.ONLINE, with_stats=True, at=at).to_json()
        mid = self.link.publish(self.s.heartbeat_topic, payload, qos=1)
        self.aux[mid] = self.s.heartbeat_topic
        self.s._count("heartbeats")

    def _footage_heartbeats(self, interval: float) -> bool:
        """Publish the heartbeats due on the footage's clock; False when the source is live
        (its heartbeats follow this loop's clock)."""
        status = self.s._status
        due = status.stream_heartbeats(interval) if status is not None else None
        if due is None:
            return False
        for at in due:
            self._publish_heartbeat(at)
        return True

    def _finish(self) -> bool:
        """Graceful end: the retained status says offline (with the final counters), then a
        clean DISCONNECT, after which the broker does not send the will. A recorded clip's last
        heartbeat (at the end of its footage) goes first."""
        self._footage_heartbeats(self.s._heartbeat_seconds)
        mid = self._publish_status(AgentState.OFFLINE)
        if mid is not None:
            deadline = time.monotonic() + _OFFLINE_ACK_SECONDS
            while mid in self.aux and self.link.connected and time.monotonic() < deadline:
                self._handle(self.link.poll(0.05))
        left = self.s._outbox.depth()
        if left:
            log.warning("stopping with %d event(s) still in the outbox; sent at next start", left)
        return True

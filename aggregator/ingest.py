"""The ingest service: an MQTT client feeding :class:`aggregator.batching.IngestLoop`.

- Events and heartbeats come through an MQTT 5 shared subscription
  (``$share/<group>/<prefix>/+/+/+/events``), so every message goes to one aggregator of the group
  and adding processes splits the load. Status messages are subscribed without sharing: they are
  retained and few, every aggregator should see the current ones on (re)subscribe, and the store
  ignores the copies.
- QoS 1, ``manual_ack``: the PUBACK of a message is sent only after its batch is committed. A
  crash before that leaves the message unacknowledged and the broker delivers it again.
- Persistent session (MQTT 5 ``clean_start=False`` with a SessionExpiryInterval; MQTT 3.1.1
  ``clean_session=False``): while this process is down the broker keeps its subscriptions and
  queues its share of messages. Measured on Mosquitto 2.0.11 (tests/integration/
  test_ingest_outages.py): both kinds of session, with their queues, survive a graceful broker
  restart; a broker crash loses whatever the broker accepted since its last persistence save
  (``autosave_interval``). The agents' outbox cannot resend those (the broker had acknowledged
  them), so a connection without ``session_present`` is logged as a warning that says what it
  may mean. The only cure is on the broker side: a short autosave interval, or a broker with
  durable session storage.
- Startup needs a successful connection within ``connect_timeout_seconds``; a refused CONNACK or
  SUBACK is an error naming the broker's reason, never treated as connected. After that the client
  reconnects with exponential backoff between ``reconnect_min_seconds`` and
  ``reconnect_max_seconds``.
"""

import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from aggregator.batching import BatchWriter, Committer, Delivery, IngestCounters, IngestLoop
from aggregator.config import IngestSettings
from aggregator.errors import IngestError
from aggregator.intake import Inbound
from footfall.connections import BrokerSettings, MqttProtocol
from footfall.contract import MAX_RECEIPT_IDS, Channel, ContractError, format_utc_ms, parse_topic
from footfall.contract.topics import shared, subscription

log = logging.getLogger(__name__)


def topic_filters(prefix: str, group: str) -> list[str]:
    """What one aggregator subscribes to."""
    return [
        shared(group, subscription(prefix, Channel.EVENTS)),
        shared(group, subscription(prefix, Channel.HEARTBEAT)),
        subscription(prefix, Channel.STATUS),
        # Retained and rare like statuses: every aggregator sees them; they are only logged.
        subscription(prefix, Channel.CONFIG_RESULT),
    ]


@dataclass(frozen=True, slots=True)
class AckToken:
    generation: int  # which connection the message came on
    mid: int
    qos: int
    receipt: tuple[str, str] | None = None  # (receipts topic, event id) for an events message


# The agent's own canonical JSON puts the id right after the schema version; a regex over the
# bytes finds it without parsing the whole event on the network thread. A payload it does not
# match (not an event of ours) simply gets no receipt: its sender keeps it and sends it again.
_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([0-9A-Fa-f-]{32,36})"')


def receipt_of(prefix: str, topic: str, payload: bytes) -> tuple[str, str] | None:
    """Where the receipt for an events message goes and the event id it names, or None (not an
    events topic of ours, or no event id to name)."""
    if not topic.endswith(Channel.EVENTS.value):
        return None
    try:
        address, channel = parse_topic(prefix, topic)
    except ContractError:
        return None
    found = _EVENT_ID.search(payload, 0, 512)
    if channel is not Channel.EVENTS or found is None:
        return None
    try:
        event_id = str(uuid.UUID(found.group(1).decode("ascii")))
    except ValueError:
        return None
    return address.topic(prefix, Channel.RECEIPTS), event_id


def receipt_payloads(
    receipts: Sequence[tuple[str, str]], aggregator: str, now: datetime
) -> list[tuple[str, bytes]]:
    """One :class:`footfall.contract.Receipt` per agent topic, for a committed batch. Built as
    plain JSON (a test decodes it with the contract's model): this runs for every batch."""
    by_topic: dict[str, list[str]] = {}
    for topic, event_id in receipts:
        by_topic.setdefault(topic, []).append(event_id)
    sent_at = format_utc_ms(now)
    out = []
    for topic, ids in by_topic.items():
        # <prefix>/<site>/<spot>/<agent>/receipts; the ids were checked when the message came.
        site, spot, agent = topic.split("/")[-4:-1]
        for start in range(0, len(ids), MAX_RECEIPT_IDS):
            body = {
                "schema_version": 1,
                "site": site,
                "spot": spot,
                "agent": agent,
                "event_ids": ids[start : start + MAX_RECEIPT_IDS],
                "aggregator": aggregator,
                "sent_at": sent_at,
            }
            out.append((topic, json.dumps(body, separators=(",", ":")).encode("ascii")))
    return out


class MqttIngest:
    """One aggregator process's connection to the broker."""

    def __init__(
        self,
        broker: BrokerSettings,
        settings: IngestSettings,
        writer: BatchWriter,
        committer: Committer | None = None,
    ) -> None:
        """``committer`` validates and commits batches elsewhere (a child process); by default
        this process does it, into ``writer``."""
        self.broker = broker
        self.settings = settings
        self.source = f"mqtt:{settings.client_id}"
        self.filters = topic_filters(broker.topic_prefix, settings.shared_group)
        self.loop = IngestLoop(
            writer,
            self,
            prefix=broker.topic_prefix,
            max_payload_bytes=settings.max_payload_bytes,
            keep_bytes=settings.dead_letter_payload_bytes,
            batch_max_events=settings.batch_max_events,
            batch_max_wait=settings.batch_max_wait_ms / 1000,
            queue_size=2 * settings.receive_maximum,
            stats_interval=settings.stats_interval_seconds,
            committer=committer,
        )
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._ever_connected = threading.Event()
        self._fatal: str | None = None
        self._fatal_event = threading.Event()
        self._pending_subscribe: dict[int, list[str]] = {}
        self.receipts_sent = 0
        self._client = self._make_client()

    @property
    def counters(self) -> IngestCounters:
        return self.loop.counters

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def v5(self) -> bool:
        return self.broker.protocol is MqttProtocol.V5

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else False,
            manual_ack=True,
        )
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password_value())
        if self.broker.tls:
            client.tls_set(ca_certs=str(self.broker.ca_file) if self.broker.ca_file else None)
        client.reconnect_delay_set(
            min_delay=max(1, math.ceil(self.broker.reconnect_min_seconds)),
            max_delay=max(1, math.ceil(self.broker.reconnect_max_seconds)),
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- running ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> IngestCounters:
        """Connect, subscribe and ingest until ``stop`` is set. Raises :class:`IngestError` when
        the broker cannot be reached or refuses us at startup, or refuses a subscription."""
        watcher = threading.Thread(target=self._stop_on_fatal, args=(stop,), daemon=True)
        watcher.start()
        try:
            self._first_connection(stop)
            if self._fatal is None and not stop.is_set():
                self.loop.run(stop)
        finally:
            self._shutdown()
        if self._fatal is not None:
            raise IngestError(self._fatal)
        log.info("ingest stopped: %s", self.counters.summary())
        return self.counters

    def _first_connection(self, stop: threading.Event) -> None:
        # The first connection is made here rather than by paho's background retries so that an
        # unreachable broker or a TLS problem is reported with its cause.
        where = f"{self.broker.host}:{self.broker.port}"
        kwargs: dict[str, Any] = {"keepalive": self.broker.keepalive_seconds}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.session_expiry_seconds
            props.ReceiveMaximum = self.settings.receive_maximum
            kwargs |= {"clean_start": False, "properties": props}
        timeout = self.settings.connect_timeout_seconds
        deadline = time.monotonic() + timeout
        delay = self.broker.reconnect_min_seconds
        while True:
            try:
                self._client.connect(self.broker.host, self.broker.port, **kwargs)
                break
            except (OSError, ValueError) as exc:
                left = deadline - time.monotonic()
                if left <= 0 or stop.is_set():
                    self._set_fatal(
                        f"cannot connect to the broker at {where}: {exc}; check mqtt.host and "
                        "mqtt.port, and that the broker is running"
                    )
                    return
                log.warning("cannot connect to the broker at %s (%s); retrying", where, exc)
                if stop.wait(min(delay, left)):
                    return
                delay = min(delay * 2, self.broker.reconnect_max_seconds)
        self._client.loop_start()
        while not self._ever_connected.wait(0.05):
            if self._fatal_event.is_set() or stop.is_set():
                return
            if time.monotonic() >= deadline:
                self._set_fatal(f"the broker at {where} did not answer within {timeout:g} s")
                return

    def _stop_on_fatal(self, stop: threading.Event) -> None:
        self._fatal_event.wait()
        stop.set()

    def _set_fatal(self, message: str) -> None:
        if self._fatal is None:
            self._fatal = message
            log.error("%s", message)
        self._fatal_event.set()

    def _shutdown(self) -> None:
        try:
            if self.v5:
                self._client.disconnect(
                    reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection")
                )
            else:
                self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._fatal_event.set()  # releases the watcher thread

    # -- acknowledgements ------------------------------------------------------------------

    def ack(self, tokens: Sequence[object]) -> int:
        """Acknowledge the messages of a committed batch to the broker, and send their agents
        the receipts that let them delete the events from their outboxes."""
        sent = 0
        receipts: list[tuple[str, str]] = []
        with self._lock:
            for token in tokens:
                assert isinstance(token, AckToken)
                if token.receipt is not None:
                    receipts.append(token.receipt)
                if not self._connected or token.generation != self._generation:
                    continue  # that connection is gone; the broker will resend the message
                if token.qos > 0:
                    self._client.ack(token.mid, token.qos)
                sent += 1
        if receipts:
            self._send_receipts(receipts)
        return sent

    def _send_receipts(self, receipts: Sequence[tuple[str, str]]) -> None:
        # Even when the connection of the batch is gone: the events are committed either way.
        # paho queues a publish made while disconnected; a receipt lost all the same only means
        # the agent sends those events again after its receipt timeout, and they are receipted
        # as duplicates then.
        for topic, payload in receipt_payloads(
            receipts, self.settings.client_id, datetime.now(UTC)
        ):
            info = self._client.publish(topic, payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("could not send a receipt to %s: %s", topic, info.rc)
                continue
            with self._lock:
                self.receipts_sent += 1

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        where = f"{self.broker.host}:{self.broker.port}"
        if reason_code.is_failure:
            message = f"the broker at {where} refused the connection: {reason_code}"
            if not self._ever_connected.is_set():
                self._set_fatal(message)
            else:
                log.error("%s; retrying", message)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        first = not self._ever_connected.is_set()
        if flags.session_present:
            log.info("connected to %s as %s, session resumed", where, self.settings.client_id)
        elif first:
            log.warning(
                "connected to %s as %s, new session: expected on the first start of this client "
                "id; otherwise the broker no longer had our session, and messages it held for "
                "this aggregator while it was away are lost",
                where,
                self.settings.client_id,
            )
        else:
            log.warning(
                "connected to %s as %s but the broker no longer had our session: messages it "
                "held for this aggregator while we were away are lost",
                where,
                self.settings.client_id,
            )
        self._subscribe(client)
        self._ever_connected.set()

    def _subscribe(self, client: mqtt.Client) -> None:
        if self.v5:
            options = SubscribeOptions(qos=1)
            result, mid = client.subscribe([(f, options) for f in self.filters])
        else:
            result, mid = client.subscribe([(f, 1) for f in self.filters])
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            log.error("could not send the subscription (%s); will retry on reconnect", result)
            return
        self._pending_subscribe[mid] = list(self.filters)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        filters = self._pending_subscribe.pop(mid, [])
        for topic_filter, code in zip(filters, reason_codes, strict=False):
            if code.is_failure:
                self._set_fatal(f"the broker refused the subscription to {topic_filter}: {code}")
            elif code.value < 1:
                log.warning("subscription to %s granted at QoS 0 only", topic_filter)
        log.debug("subscribed to %s", ", ".join(filters))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning(
            "cannot connect to the broker at %s:%d; retrying with backoff",
            self.broker.host,
            self.broker.port,
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was_connected = self._connected
            self._connected = False
        if was_connected and reason_code.is_failure:
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's network thread. It must never raise (paho would end its loop) and is
        # kept to recording the message: validation and storage happen on the ingest thread.
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = "<topic not valid UTF-8>"
            with self._lock:
                generation = self._generation
            inbound = Inbound(
                topic=topic,
                payload=bytes(message.payload),
                received_at=datetime.now(UTC),
                source=self.source,
            )
            token = AckToken(
                generation,
                message.mid,
                message.qos,
                receipt_of(self.broker.topic_prefix, topic, inbound.payload),
            )
            self.loop.offer(Delivery(inbound, token))
        except Exception:  # pragma: no cover - defensive: nothing above is expected to raise
            log.exception("could not take a message from the broker; it stays unacknowledged")

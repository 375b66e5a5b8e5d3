"""One connection to the MQTT broker, with paho-mqtt 2.x: the :class:`BrokerLink` protocol, its
paho implementation and the errors that say why a connection failed.

A link is one connection and nothing more: no automatic reconnect, no session carried over, no
message queued behind the caller's back. :mod:`edge_agent.delivery.sender` makes a new link for every
attempt and re-publishes from the outbox whatever the old one did not get acknowledged; the
outbox, not the broker session, is what guarantees nothing is lost (MQTT 5 sessions did not
survive a broker restart on Mosquitto 2.0.11 anyway).

Failures are kept apart, because each needs a different fix on site:

- :class:`BrokerUnreachableError`: no TCP connection, or it closed before the broker answered;
- :class:`TlsError`: the broker's certificate is not trusted (wrong CA file) or TLS failed;
- :class:`BrokerRefusedError`: the broker answered CONNECT with a refusal (bad credentials, not
  authorised, client id rejected); never reported as connected;
- a lost connection after a successful CONNACK shows as :attr:`BrokerLink.connected` = False.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from footfall.connections import BrokerSettings, MqttProtocol

log = logging.getLogger(__name__)

# MQTT 5 reason codes of a CONNACK that point at the agent's own credentials or identity.
_BAD_CREDENTIALS = 134
_NOT_AUTHORIZED = 135
_BAD_CLIENT_ID = 133
_BANNED = 138
NO_MATCHING_SUBSCRIBERS = 0x10


class LinkError(Exception):
    """The connection could not be made; the message says why and what to check."""


class BrokerUnreachableError(LinkError):
    pass


class TlsError(LinkError):
    pass


class BrokerRefusedError(LinkError):
    def __init__(self, message: str, reason_code: int, reason: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.reason = reason


@dataclass(frozen=True)
class Ack:
    """The broker's answer to one QoS 1 publish (PUBACK)."""

    mid: int
    reason_code: int  # 0 Success, 16 No matching subscribers; >= 0x80 is a failure
    reason: str

    @property
    def failed(self) -> bool:
        """The broker refused the message (e.g. "Not authorized" by its ACL)."""
        return self.reason_code >= 0x80

    @property
    def unrouted(self) -> bool:
        """The broker took the message but no subscription matched it (MQTT 5 reason code
        0x10 "No matching subscribers"): nobody will ever receive it."""
        return self.reason_code == NO_MATCHING_SUBSCRIBERS

    @property
    def delivered(self) -> bool:
        """Success and nothing less: the broker routed the message to a subscriber."""
        return self.reason_code == 0


@dataclass(frozen=True)
class Received:
    """A message the broker delivered on one of the link's subscriptions."""

    topic: str
    payload: bytes
    retain: bool  # True when it was a retained message sent because we subscribed


@dataclass(frozen=True)
class LastWill:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class BrokerLink(Protocol):
    """One connection. ``connect`` raises a :class:`LinkError` subclass or returns connected."""

    @property
    def connected(self) -> bool: ...

    @property
    def lost_reason(self) -> str | None:
        """Why an established connection ended, once :attr:`connected` turned False."""
        ...

    @property
    def receive_maximum(self) -> int | None:
        """How many QoS 1 publishes the broker accepts in flight (MQTT 5), if it said."""
        ...

    def connect(self, will: LastWill | None) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Hand one message to the connection; returns its message id (to match the Ack).
        Raises :class:`LinkError` when the connection is gone."""
        ...

    def poll(self, timeout: float) -> list[Ack]:
        """Do network work for up to ``timeout`` seconds; the PUBACKs that arrived. Acks that
        arrived before a connection loss are still returned."""
        ...

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Ask for messages on ``topic``; they are returned by :meth:`received` after a poll.
        Raises :class:`LinkError` when the connection is gone."""
        ...

    def received(self) -> list[Received]:
        """Messages that arrived during the polls since the last call."""
        ...

    def close(self) -> None:
        """A clean DISCONNECT if still connected (the broker then drops the will), then close."""
        ...


LinkFactory = Callable[[], BrokerLink]


def _refusal_message(settings: BrokerSettings, client_id: str, code: int, reason: str) -> str:
    where = f"the broker at {settings.host}:{settings.port}"
    if code in (_BAD_CREDENTIALS, _NOT_AUTHORIZED):
        # Mosquitto 2.0 answers a wrong password with 135, not 134, so both get the same hint.
        return (
            f"{where} refused the connection: {reason} (reason code {code}); check mqtt.username "
            f"({settings.username!r}) and the password, and that this user may connect"
        )
    if code == _BAD_CLIENT_ID:
        return f"{where} refused client id {client_id!r}: {reason} (reason code {code})"
    if code == _BANNED:
        return f"{where} refused the connection: {reason} (reason code {code}); banned"
    return f"{where} refused the connection: {reason} (reason code {code})"


class PahoLink:
    """:class:`BrokerLink` over a paho-mqtt 2.x client driven from the caller's thread.

    The caller's thread runs ``client.loop()`` through :meth:`poll`, so the acks are handled in
    the same thread that publishes: no locks, and nothing happens between two calls.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        *,
        inflight: int = 100,
        connack_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.settings = settings
        self.client_id = client_id
        self._connack_timeout = connack_timeout
        v5 = settings.protocol is MqttProtocol.V5
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": True}
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            **kwargs,
        )
        self._client.connect_timeout = connect_timeout
        # The sender keeps its own window; paho would otherwise hold back messages past 20.
        self._client.max_inflight_messages_set(inflight)
        self._client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password_value())
        if settings.tls:
            ca = str(settings.ca_file) if settings.ca_file is not None else None
            self._client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        self._v5 = v5
        self._acks: list[Ack] = []
        self._received: list[Received] = []
        self._connack: Any = None
        self._connack_props: Any = None
        self._connected = False
        self._lost: str | None = None
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # paho callbacks, run inside client.loop() in the caller's thread.
    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, props: Any) -> None:
        self._connack, self._connack_props = reason_code, props
        self._connected = not reason_code.is_failure

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        self._acks.append(Ack(mid, int(reason_code.value), str(reason_code)))

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return  # not one of ours: every topic we subscribe to is ASCII
        self._received.append(Received(topic, bytes(message.payload), bool(message.retain)))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if self._connected:
            s = self.settings
            self._lost = f"connection to {s.host}:{s.port} lost ({reason_code})"
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def lost_reason(self) -> str | None:
        return self._lost

    @property
    def receive_maximum(self) -> int | None:
        value = getattr(self._connack_props, "ReceiveMaximum", None)
        return int(value) if value is not None else None

    def connect(self, will: LastWill | None) -> None:
        s = self.settings
        where = f"{s.host}:{s.port}"
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        kwargs: dict[str, Any] = {"keepalive": s.keepalive_seconds}
        if self._v5:
            # No session to resume: whatever was not acknowledged is re-published from the outbox.
            kwargs["clean_start"] = True
        try:
            self._client.connect(s.host, s.port, **kwargs)
        except ssl.SSLCertVerificationError as exc:
            ca = f"mqtt.ca_file = {s.ca_file}" if s.ca_file else "the system's CA certificates"
            raise TlsError(
                f"TLS: the certificate of the broker at {where} is not trusted "
                f"({exc.verify_message}); check {ca}"
            ) from None
        except ssl.SSLError as exc:
            raise TlsError(f"TLS handshake with the broker at {where} failed: {exc}") from None
        except ConnectionResetError:
            hint = "; is this a TLS port (mqtt.tls = true)?" if s.tls else ""
            raise BrokerUnreachableError(
                f"the broker at {where} reset the connection before answering{hint}"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise BrokerUnreachableError(
                f"cannot reach the broker at {where}: {reason}; check mqtt.host and mqtt.port, "
                "and that the broker is running"
            ) from None
        self._wait_connack(where)

    def _wait_connack(self, where: str) -> None:
        deadline = time.monotonic() + self._connack_timeout
        while self._connack is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._drop()
                raise BrokerUnreachableError(
                    f"the broker at {where} did not answer CONNECT in {self._connack_timeout:g} s"
                )
            rc = self._client.loop(min(0.1, remaining))
            if rc and self._connack is None:
                self._drop()
                raise BrokerUnreachableError(
                    f"the broker at {where} closed the connection before answering CONNECT"
                )
        if self._connack.is_failure:
            self._drop()
            code, reason = int(self._connack.value), str(self._connack)
            raise BrokerRefusedError(
                _refusal_message(self.settings, self.client_id, code, reason), code, reason
            )

    def _drop(self) -> None:
        self._connected = False
        self._close_socket()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        import paho.mqtt.client as mqtt

        if not self._connected:
            raise LinkError(f"publish to {topic}: not connected ({self._lost or 'never was'})")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            self._connected = False
            self._lost = self._lost or "connection lost while publishing"
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    def poll(self, timeout: float) -> list[Ack]:
        import paho.mqtt.client as mqtt

        if self._connected:
            rc = self._client.loop(timeout)
            if rc != mqtt.MQTT_ERR_SUCCESS and self._connected:
                self._connected = False
                s = self.settings
                self._lost = f"connection to {s.host}:{s.port} lost ({mqtt.error_string(rc)})"
        acks, self._acks = self._acks, []
        return acks

    def subscribe(self, topic: str, qos: int = 1) -> None:
        import paho.mqtt.client as mqtt

        if not self._connected:
            raise LinkError(f"subscribe to {topic}: not connected ({self._lost or 'never was'})")
        result, _mid = self._client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise LinkError(f"subscribe to {topic} failed: {mqtt.error_string(result)}")

    def received(self) -> list[Received]:
        messages, self._received = self._received, []
        return messages

    def close(self) -> None:
        if self._connected:
            try:
                # Outside paho's loop thread this writes the DISCONNECT at once and closes.
                self._client.disconnect()
            except Exception as exc:  # closing must never raise
                log.debug("disconnect: %s", exc)
        self._connected = False
        self._close_socket()

    def _close_socket(self) -> None:
        # paho closes its socket only inside its own loop functions; an agent that retries a
        # refusing broker every minute for weeks must not leak one descriptor per attempt.
        close = getattr(self._client, "_sock_close", None)
        if close is not None:
            try:
                close()
            except OSError as exc:
                log.debug("closing the socket: %s", exc)


def paho_link_factory(
    settings: BrokerSettings, client_id: str, *, inflight: int = 100
) -> LinkFactory:
    """A factory of :class:`PahoLink` for the sender, which makes one per connection attempt."""
    if settings.protocol is MqttProtocol.V311:
        log.warning(
            "MQTT 3.1.1: the broker acknowledges a publish its ACL denies as if it were "
            "delivered, so a wrong ACL loses events silently; MQTT 5 reports the denial"
        )
    if not settings.tls:
        log.warning("MQTT without TLS: credentials and events travel in clear text")

    def make() -> BrokerLink:
        return PahoLink(settings, client_id, inflight=inflight)

    return make


def check_broker(settings: BrokerSettings, client_id: str) -> str:
    """Connect once and disconnect; a line saying what worked, or a :class:`LinkError`."""
    link = PahoLink(settings, client_id)
    try:
        link.connect(None)
        limit = link.receive_maximum
    finally:
        link.close()
    proto = "MQTT 5" if settings.protocol is MqttProtocol.V5 else "MQTT 3.1.1"
    tls = "TLS" if settings.tls else "no TLS"
    extra = f", receive maximum {limit}" if limit else ""
    return (
        f"connected to {settings.host}:{settings.port} as {settings.username!r} "
        f"(client id {client_id!r}, {proto}, {tls}{extra})"
    )

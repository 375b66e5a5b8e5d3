"""The MQTT side of ingest without a broker: what is subscribed, and that an acknowledgement never
goes out on a connection other than the one its message came on."""

import random
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from aggregator.config import IngestSettings
from aggregator.ingest import AckToken, MqttIngest, receipt_of, topic_filters
from aggregator.store import WriteBatch, WriteResult
from footfall.connections import BrokerSettings
from footfall.contract import Receipt, decode
from footfall.contract.examples import random_events


class NullWriter:
    def write(self, batch: WriteBatch) -> WriteResult:
        return WriteResult()


def test_events_and_heartbeats_are_shared_and_statuses_are_not() -> None:
    assert topic_filters("footfall/v1", "aggs") == [
        "$share/aggs/footfall/v1/+/+/+/events",
        "$share/aggs/footfall/v1/+/+/+/heartbeat",
        "footfall/v1/+/+/+/status",
        "footfall/v1/+/+/+/config-result",
    ]


def _connack(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, name)


def _ingest(monkeypatch: pytest.MonkeyPatch) -> tuple[MqttIngest, list[int]]:
    ingest = MqttIngest(BrokerSettings(tls=False, port=1), IngestSettings(), NullWriter())
    sent: list[int] = []
    monkeypatch.setattr(ingest._client, "ack", lambda mid, qos: sent.append(mid))
    monkeypatch.setattr(ingest._client, "subscribe", lambda *a, **k: (mqtt.MQTT_ERR_SUCCESS, 1))
    return ingest, sent


def _connect(ingest: MqttIngest, session_present: bool = True) -> None:
    flags: Any = mqtt.ConnectFlags(session_present=session_present)
    ingest._on_connect(ingest._client, None, flags, _connack("Success"), None)


def _disconnect(ingest: MqttIngest) -> None:
    flags: Any = mqtt.DisconnectFlags(is_disconnect_packet_from_server=False)
    code = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    ingest._on_disconnect(ingest._client, None, flags, code, None)


def test_acks_of_a_lost_connection_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, sent = _ingest(monkeypatch)
    _connect(ingest, session_present=False)
    assert ingest.ack([AckToken(1, 10, 1), AckToken(1, 11, 1)]) == 2
    _disconnect(ingest)
    assert ingest.ack([AckToken(1, 12, 1)]) == 0, "not connected: nothing may be sent"
    _connect(ingest)
    # mid 13 of the first connection may now name a different message: never ack it.
    assert ingest.ack([AckToken(1, 13, 1), AckToken(2, 13, 1), AckToken(2, 14, 0)]) == 2
    assert sent == [10, 11, 13]


def test_a_refused_first_connection_is_fatal_not_connected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest, _ = _ingest(monkeypatch)
    flags: Any = mqtt.ConnectFlags(session_present=False)
    ingest._on_connect(ingest._client, None, flags, _connack("Not authorized"), None)
    assert ingest._fatal == "the broker at 127.0.0.1:1 refused the connection: Not authorized"
    assert not ingest._ever_connected.is_set()
    assert ingest.ack([AckToken(0, 1, 1)]) == 0


def test_a_refused_subscription_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, _ = _ingest(monkeypatch)
    _connect(ingest)
    granted = ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")
    denied = ReasonCode(PacketTypes.SUBACK, "Not authorized")
    ingest._on_subscribe(ingest._client, None, 1, [granted, denied, granted], None)
    assert ingest._fatal == (
        "the broker refused the subscription to $share/aggregators/footfall/v1/+/+/+/heartbeat: "
        "Not authorized"
    )


def test_receipts_name_every_committed_event_of_each_agent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest, _ = _ingest(monkeypatch)
    published: list[tuple[str, bytes]] = []

    class Info:
        rc = mqtt.MQTT_ERR_SUCCESS

    def publish(topic: str, payload: bytes, qos: int) -> Info:
        published.append((topic, payload))
        return Info()

    monkeypatch.setattr(ingest._client, "publish", publish)
    _connect(ingest)
    events = random_events(5, rng=random.Random(3))
    tokens = []
    for i, e in enumerate(events):
        topic = f"footfall/v1/{e.site}/{e.spot}/{e.agent}/events"
        tokens.append(AckToken(1, i, 1, receipt_of("footfall/v1", topic, e.to_json())))
    # Messages that are not events of this prefix get no receipt.
    assert receipt_of("footfall/v1", "other/v1/s/sp/a/events", events[0].to_json()) is None
    assert receipt_of("footfall/v1", "footfall/v1/s/sp/a/heartbeat", b"{}") is None
    assert receipt_of("footfall/v1", "footfall/v1/s/sp/a/events", b'{"event_id":"nope"}') is None
    tokens.append(AckToken(1, 99, 1, None))
    _disconnect(ingest)  # committed all the same: the receipts still go out
    assert ingest.ack(tokens) == 0

    by_agent: dict[str, set[str]] = {}
    for e in events:
        by_agent.setdefault(f"footfall/v1/{e.site}/{e.spot}/{e.agent}/receipts", set()).add(
            str(e.event_id)
        )
    assert {t for t, _ in published} == set(by_agent)
    for topic, payload in published:
        receipt = decode(Receipt, payload)
        assert topic.endswith(f"/{receipt.site}/{receipt.spot}/{receipt.agent}/receipts")
        assert {str(i) for i in receipt.event_ids} == by_agent[topic]
        assert receipt.aggregator == ingest.settings.client_id
        assert abs((receipt.sent_at - datetime.now(UTC)).total_seconds()) < 60
    assert ingest.receipts_sent == len(by_agent)

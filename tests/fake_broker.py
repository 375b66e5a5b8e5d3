"""A tiny in-memory stand-in for the broker behind :class:`footfall.mqtt_link.BrokerLink`, for
unit tests of the sender: it records what was published, acknowledges (or denies, or does not
answer), refuses connections and cuts them on request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from footfall.mqtt_link import (
    NO_MATCHING_SUBSCRIBERS,
    Ack,
    BrokerLink,
    LastWill,
    LinkError,
    Received,
)

SUCCESS = Ack(0, 0, "Success")
NOT_AUTHORIZED_CODE = 135


@dataclass
class Published:
    topic: str
    payload: bytes
    retain: bool
    link: int  # which connection (1, 2, ...)


@dataclass
class FakeBroker:
    refuse: LinkError | None = None
    deny: Callable[[str], bool] = lambda topic: False
    # True for a topic nobody subscribes to: PUBACK 0x10 "No matching subscribers".
    unrouted: Callable[[str], bool] = lambda topic: False
    answer: bool = True  # False: publishes get no PUBACK (until cut)
    receive_maximum: int | None = None
    # Stands in for an aggregator: a receipt for every delivered event on the agent's receipts
    # topic, as soon as the PUBACK goes out. False: nobody ever confirms.
    receipts: bool = True
    published: list[Published] = field(default_factory=list)
    retained: dict[str, bytes] = field(default_factory=dict)
    wills: list[LastWill] = field(default_factory=list)  # wills the broker sent
    links: list[FakeLink] = field(default_factory=list)
    connect_attempts: int = 0
    max_unacked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def link(self) -> BrokerLink:
        return FakeLink(self)

    def cut(self) -> None:
        """Drop every open connection as a broker restart would."""
        with self.lock:
            for link in self.links:
                if link.connected:
                    link.lost("cut by the test")

    def on_topic(self, topic: str) -> list[Published]:
        with self.lock:
            return [p for p in self.published if p.topic == topic]


class FakeLink:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.number = 0
        self.will: LastWill | None = None
        self._connected = False
        self._lost: str | None = None
        self._next_mid = 0
        self._unacked: list[tuple[int, str]] = []
        self._payloads: dict[int, bytes] = {}
        self.subscriptions: list[str] = []
        self._inbox: list[Received] = []

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def lost_reason(self) -> str | None:
        return self._lost

    @property
    def receive_maximum(self) -> int | None:
        return self.broker.receive_maximum

    def connect(self, will: LastWill | None) -> None:
        b = self.broker
        with b.lock:
            b.connect_attempts += 1
            if b.refuse is not None:
                raise b.refuse
            b.links.append(self)
            self.number = len(b.links)
            self.will = will
            self._connected = True

    def subscribe(self, topic: str, qos: int = 1) -> None:
        b = self.broker
        with b.lock:
            if not self._connected:
                raise LinkError("not connected")
            self.subscriptions.append(topic)
            if topic in b.retained:
                self._inbox.append(Received(topic, b.retained[topic], True))

    def deliver(self, topic: str, payload: bytes) -> None:
        """A message from another client, on a topic this link subscribed to."""
        with self.broker.lock:
            if topic in self.subscriptions:
                self._inbox.append(Received(topic, payload, False))

    def received(self) -> list[Received]:
        with self.broker.lock:
            inbox, self._inbox = self._inbox, []
        return inbox

    def lost(self, reason: str) -> None:  # called with the broker's lock held
        self._connected = False
        self._lost = reason
        if self.will is not None:
            self.broker.wills.append(self.will)
            if self.will.retain:
                self.broker.retained[self.will.topic] = self.will.payload

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        b = self.broker
        with b.lock:
            if not self._connected:
                raise LinkError("not connected")
            self._next_mid += 1
            mid = self._next_mid
            denied = b.deny(topic)
            if not denied:
                b.published.append(Published(topic, payload, retain, self.number))
                if retain:
                    b.retained[topic] = payload
            self._unacked.append((mid, topic))
            self._payloads[mid] = payload
            b.max_unacked = max(b.max_unacked, len(self._unacked))
            return mid

    def poll(self, timeout: float) -> list[Ack]:
        b = self.broker
        with b.lock:
            acks = []
            if self._connected and b.answer:
                for mid, topic in self._unacked:
                    if b.deny(topic):
                        acks.append(Ack(mid, NOT_AUTHORIZED_CODE, "Not authorized"))
                    elif b.unrouted(topic):
                        acks.append(Ack(mid, NO_MATCHING_SUBSCRIBERS, "No matching subscribers"))
                    else:
                        acks.append(Ack(mid, 0, "Success"))
                        if b.receipts and topic.endswith("/events"):
                            self._receipt_for(topic, mid)
                self._unacked.clear()
        if not acks:
            time.sleep(min(timeout, 0.002))
        return acks

    def _receipt_for(self, topic: str, mid: int) -> None:  # called with the broker's lock held
        receipts = topic.removesuffix("/events") + "/receipts"
        if receipts not in self.subscriptions:
            return
        payload = self._payloads.pop(mid)
        site, spot, agent = topic.split("/")[-4:-1]
        body = {
            "schema_version": 1,
            "site": site,
            "spot": spot,
            "agent": agent,
            "event_ids": [json.loads(payload)["event_id"]],
            "aggregator": "fake",
            "sent_at": "2026-05-01T12:00:00.000Z",
        }
        self._inbox.append(Received(receipts, json.dumps(body).encode(), False))

    def close(self) -> None:
        with self.broker.lock:
            # A clean DISCONNECT: the broker forgets the will.
            self._connected = False

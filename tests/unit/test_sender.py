"""The publishing loop against an in-memory broker: order, window, acknowledgement, reconnects,
denials, refusals, status and heartbeat, draining on stop."""

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import Confirmation, Synchronous
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.heartbeat import StatusBuilder
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.preflight import SetupError
from edge_agent.delivery.sender import EventSender, LinkState
from footfall.contract import AgentStatus, PersonEvent, decode
from footfall.contract.topics import AgentAddress, Channel
from footfall.mqtt_link import BrokerLink, BrokerRefusedError
from tests.delivery_support import synthetic_events, wait_for
from tests.fake_broker import FakeBroker

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
PREFIX = "footfall/v1"
EVENTS = ADDRESS.topic(PREFIX, Channel.EVENTS)
HEARTBEAT = ADDRESS.topic(PREFIX, Channel.HEARTBEAT)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", synchronous=Synchronous.NORMAL)
    yield box
    box.close()


def fill(outbox: Outbox, n: int, seed: int = 1) -> list[str]:
    items = list(synthetic_events(n, seed=seed, address=ADDRESS))
    outbox.put_many(items)
    return [str(e.event_id) for e, _ in items]


def make_sender(
    outbox: Outbox,
    broker: FakeBroker,
    *,
    window: int = 8,
    heartbeat: float = 60.0,
    status: bool = True,
    confirm: Confirmation = Confirmation.RECEIPT,
    receipt_timeout: float = 30.0,
) -> EventSender:
    builder = StatusBuilder(ADDRESS, outbox, config_version="7") if status else None
    sender = EventSender(
        outbox,
        broker.link,
        address=ADDRESS,
        topic_prefix=PREFIX,
        backoff=Backoff(0.005, 0.02),
        status=builder,
        heartbeat_seconds=heartbeat,
        window=window,
        idle_poll_seconds=0.005,
        confirm=confirm,
        receipt_timeout_seconds=receipt_timeout,
    )
    if builder is not None:
        builder.events_sent = lambda: sender.stats().events_sent
        builder.errors = [lambda: sender.stats().last_error]
    return sender


def ids_on(broker: FakeBroker, topic: str = EVENTS) -> list[str]:
    return [json.loads(p.payload)["event_id"] for p in broker.on_topic(topic)]


def test_every_event_is_published_in_order_and_leaves_the_outbox(outbox: Outbox) -> None:
    produced = fill(outbox, 50)
    broker = FakeBroker()
    sender = make_sender(outbox, broker, window=8)
    sender.start()
    try:
        wait_for(lambda: outbox.depth() == 0, "an empty outbox")
        assert ids_on(broker) == produced
        assert broker.max_unacked <= 8 + 1  # the window, plus the online status
        assert sender.stats().events_sent == 50
        more = fill(outbox, 5, seed=2)  # picked up while idle
        wait_for(lambda: outbox.depth() == 0, "the late events")
        assert ids_on(broker) == produced + more
    finally:
        assert sender.stop(1.0)
    assert sender.stats().state is LinkState.STOPPED


def test_the_broker_receive_maximum_caps_the_window(outbox: Outbox) -> None:
    fill(outbox, 30)
    broker = FakeBroker(receive_maximum=3)
    sender = make_sender(outbox, broker, window=50, status=False)
    sender.start()
    wait_for(lambda: outbox.depth() == 0, "an empty outbox")
    assert sender.stop(1.0)
    assert broker.max_unacked == 3


def test_unacknowledged_events_are_published_again_after_a_reconnect(outbox: Outbox) -> None:
    produced = fill(outbox, 20)
    broker = FakeBroker(answer=False)
    sender = make_sender(outbox, broker, window=5, status=False)
    sender.start()
    try:
        wait_for(lambda: len(broker.on_topic(EVENTS)) == 5, "a full window")
        assert outbox.depth() == 20  # published is not acknowledged
        broker.cut()
        broker.answer = True
        wait_for(lambda: outbox.depth() == 0, "an empty outbox")
    finally:
        assert sender.stop(1.0)
    received = ids_on(broker)
    assert set(received) == set(produced)
    # The first connection's five came again, in order, from the oldest.
    assert received[:5] == produced[:5] and received[5:10] == produced[:5]
    assert received[5:] == produced
    stats = sender.stats()
    assert (stats.connects, stats.connections_lost, stats.events_republished) == (2, 1, 5)


def test_a_denied_publish_is_reported_kept_and_retried(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    produced = fill(outbox, 6)
    denying = {"on": True}
    broker = FakeBroker(deny=lambda topic: denying["on"] and topic == EVENTS)
    sender = make_sender(outbox, broker, window=4, heartbeat=0.01)
    caplog.set_level(logging.INFO, logger="edge_agent.delivery.sender")
    sender.start()
    try:
        wait_for(lambda: sender.stats().publish_denied >= 4, "denials")
        stats = sender.stats()
        assert stats.state is LinkState.CONNECTED
        assert stats.last_error is not None
        assert "denied a publish to " + EVENTS in stats.last_error
        assert "Not authorized (reason code 135)" in stats.last_error
        assert outbox.depth() == 6  # nothing deleted
        # The heartbeat still goes out, and carries the denial to the fleet.
        wait_for(lambda: len(broker.on_topic(HEARTBEAT)) >= 2, "heartbeats")
        beat = decode(AgentStatus, broker.on_topic(HEARTBEAT)[-1].payload)
        assert beat.last_error is not None and "Not authorized" in beat.last_error
        denying["on"] = False
        wait_for(lambda: outbox.depth() == 0, "delivery after the ACL was fixed")
        assert ids_on(broker) == produced
        assert sender.stats().last_error is None
    finally:
        assert sender.stop(1.0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]


def test_no_matching_subscribers_keeps_the_events_and_probes_until_an_aggregator_is_back(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    # A broker restart that lost the aggregators' shared subscription answers every publish
    # with 0x10; counting those as delivered was how events were lost for good.
    produced = fill(outbox, 30)
    nobody = {"on": True}
    broker = FakeBroker(unrouted=lambda topic: nobody["on"] and topic == EVENTS)
    sender = make_sender(outbox, broker, window=8, heartbeat=0.01)
    caplog.set_level(logging.INFO, logger="edge_agent.delivery.sender")
    sender.start()
    try:
        wait_for(lambda: sender.stats().publish_unrouted >= 12, "unrouted publishes")
        stats = sender.stats()
        assert outbox.depth() == 30  # nothing deleted
        assert stats.events_sent == 0
        assert stats.last_error is not None
        assert "no subscriber for " + EVENTS in stats.last_error
        assert "30 event(s) not delivered stay in the outbox" in stats.last_error
        # After the first window, the sender probes with the oldest event, one at a time.
        probes = ids_on(broker)[8 : stats.publish_unrouted]
        assert probes and set(probes) == {produced[0]}
        beat = decode(AgentStatus, broker.on_topic(HEARTBEAT)[-1].payload)
        assert beat.last_error is not None and "No matching subscribers" in beat.last_error
        nobody["on"] = False
        wait_for(lambda: outbox.depth() == 0, "delivery once an aggregator subscribed")
        assert set(ids_on(broker)) == set(produced)
        assert sender.stats().last_error is None
    finally:
        assert sender.stop(1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no subscriber" in warnings[0], warnings
    assert any("routes this agent's events" in r.getMessage() for r in caplog.records)


def test_a_refused_connection_is_never_connected_and_reported_once(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    fill(outbox, 3)
    message = "the broker at h:1 refused the connection: Not authorized (reason code 135)"
    broker = FakeBroker(refuse=BrokerRefusedError(message, 135, "Not authorized"))
    sender = make_sender(outbox, broker)
    caplog.set_level(logging.DEBUG, logger="edge_agent.delivery.sender")
    sender.start()
    wait_for(lambda: broker.connect_attempts >= 4, "retries")
    stats = sender.stats()
    assert stats.state is LinkState.REFUSED
    assert stats.last_error == message
    assert stats.connects == 0 and stats.connect_failures >= 4
    assert broker.published == []
    assert sender.stop(0.05)
    assert outbox.depth() == 3
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [message]


def test_status_online_on_connect_will_offline_and_offline_on_stop(outbox: Outbox) -> None:
    broker = FakeBroker()
    sender = make_sender(outbox, broker, heartbeat=0.02)
    fill(outbox, 2)  # after the start of the agent: counted as emitted since start
    sender.start()
    wait_for(lambda: outbox.depth() == 0, "an empty outbox")
    wait_for(lambda: sender.stats().heartbeats >= 2, "two heartbeats")

    link = broker.links[0]
    assert link.will is not None and link.will.retain and link.will.topic == sender.status_topic
    will = decode(AgentStatus, link.will.payload)
    assert (will.state.value, will.stats, will.config_version) == ("offline", None, "7")

    online = decode(AgentStatus, broker.on_topic(sender.status_topic)[0].payload)
    assert online.state.value == "online" and online.stats is not None
    beat = decode(AgentStatus, broker.on_topic(sender.heartbeat_topic)[-1].payload)
    assert beat.stats is not None
    assert (beat.stats.events_emitted, beat.stats.events_sent, beat.stats.outbox_depth) == (2, 2, 0)

    assert sender.stop(1.0)
    last = decode(AgentStatus, broker.retained[sender.status_topic])
    assert last.state.value == "offline" and last.stats is not None
    assert broker.wills == []  # a clean disconnect: the broker never sent the will


def test_a_cut_connection_makes_the_broker_send_the_will(outbox: Outbox) -> None:
    broker = FakeBroker()
    sender = make_sender(outbox, broker)
    sender.start()
    try:
        wait_for(lambda: bool(broker.links), "a connection")
        broker.cut()
        wait_for(lambda: len(broker.links) == 2, "a reconnect")
    finally:
        assert sender.stop(1.0)
    assert [decode(AgentStatus, w.payload).state.value for w in broker.wills] == ["offline"]


def test_stop_drains_what_it_can_and_leaves_the_rest(outbox: Outbox) -> None:
    fill(outbox, 10)
    broker = FakeBroker(answer=False)
    sender = make_sender(outbox, broker, window=4, status=False)
    sender.start()
    wait_for(lambda: len(broker.on_topic(EVENTS)) == 4, "a full window")
    assert sender.stop(0.05)  # the broker never answers: the deadline ends the drain
    assert outbox.depth() == 10
    payloads = [PersonEvent.model_validate_json(u.payload) for u in outbox.next_unsent(20)]
    assert len(payloads) == 10


def test_an_outbox_error_does_not_end_the_loop(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    produced = fill(outbox, 10)
    real = outbox.mark_published
    failures = {"left": 2}

    def flaky(seqs: object, **kwargs: bool) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return real(seqs, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "mark_published", flaky)
    broker = FakeBroker()
    sender = make_sender(outbox, broker, window=4, status=False)
    sender.start()
    wait_for(lambda: outbox.depth() == 0, "delivery despite the errors")
    assert sender.stop(1.0)
    # Acknowledged but not recorded: sent again, never lost.
    assert set(ids_on(broker)) == set(produced)
    assert len(broker.links) == 3


def test_acknowledged_events_wait_for_a_receipt_and_are_sent_again_without_one(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    # The broker took them (PUBACK) and lost them before any aggregator committed them.
    produced = fill(outbox, 6)
    broker = FakeBroker(receipts=False)
    sender = make_sender(outbox, broker, window=8, status=False, receipt_timeout=0.3)
    caplog.set_level(logging.WARNING, logger="edge_agent.delivery.sender")
    sender.start()
    try:
        wait_for(lambda: sender.stats().events_sent == 6, "six PUBACKs")
        assert outbox.depth() == 6 and outbox.unsent() == 0
        wait_for(lambda: sender.stats().events_requeued >= 6, "the overdue events sent again")
        wait_for(lambda: len(broker.on_topic(EVENTS)) >= 12, "the second copies")
        assert outbox.depth() == 6
        broker.receipts = True  # an aggregator again: the next copies are confirmed
        wait_for(lambda: outbox.depth() == 0, "confirmation")
    finally:
        assert sender.stop(1.0)
    assert ids_on(broker)[:12] == produced + produced
    assert sender.stats().events_confirmed == 6
    assert any("no receipt for 6 event(s)" in r.getMessage() for r in caplog.records)


def test_a_receipt_for_another_agent_confirms_nothing(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    produced = fill(outbox, 2)
    broker = FakeBroker(receipts=False)
    sender = make_sender(outbox, broker, status=False)
    caplog.set_level(logging.ERROR, logger="edge_agent.delivery.sender")
    sender.start()
    try:
        wait_for(lambda: sender.stats().events_sent == 2, "two PUBACKs")
        other = {
            "schema_version": 1,
            "site": "site-a",
            "spot": "spot-1",
            "agent": "someone-else",
            "event_ids": produced,
            "aggregator": "agg",
            "sent_at": "2026-05-01T12:00:00.000Z",
        }
        link = broker.links[-1]
        receipts = ADDRESS.topic(PREFIX, Channel.RECEIPTS)
        link.deliver(receipts, json.dumps(other).encode())
        link.deliver(receipts, b"not json")
        wait_for(lambda: bool(caplog.records), "the complaint")
        own = {**other, "agent": ADDRESS.agent, "event_ids": produced[:1]}
        link.deliver(receipts, json.dumps(own).encode())
        wait_for(lambda: outbox.depth() == 1, "the one real confirmation")
    finally:
        assert sender.stop(0.1)
    assert sender.stats().events_confirmed == 1
    errors = [r.getMessage() for r in caplog.records]
    assert errors == [
        f"ignoring an invalid receipt on {receipts}: agent: the receipt is for "
        "site-a/spot-1/someone-else"
    ]


def test_with_broker_confirmation_the_puback_is_enough(outbox: Outbox) -> None:
    fill(outbox, 5)
    broker = FakeBroker(receipts=False)
    sender = make_sender(outbox, broker, status=False, confirm=Confirmation.BROKER)
    sender.start()
    wait_for(lambda: outbox.depth() == 0, "an empty outbox")
    assert sender.stop(1.0)
    assert all(not link.subscriptions for link in broker.links)
    assert sender.stats().events_confirmed == 5


def test_a_link_that_cannot_be_built_ends_the_sender_with_one_line(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing password file is found when the link is built, before any network traffic:
    retrying cannot help, so the sender ends and says why, once; the events stay."""
    fill(outbox, 3)
    line = "mqtt.password_file /etc/x/mqtt.password: cannot read it: No such file or directory"
    attempts = []

    def links() -> BrokerLink:
        attempts.append(1)
        raise SetupError(line)

    fatal: list[str] = []
    sender = EventSender(
        outbox,
        links,
        address=ADDRESS,
        topic_prefix=PREFIX,
        backoff=Backoff(0.005, 0.02),
        on_fatal=fatal.append,
    )
    caplog.set_level(logging.INFO, logger="edge_agent.delivery.sender")
    sender.start()
    assert sender.join(5.0)
    stats = sender.stats()
    assert fatal == [line] and len(attempts) == 1
    assert (stats.state, stats.last_error, stats.connect_failures) == (LinkState.FAILED, line, 1)
    assert outbox.depth() == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"{line}; the MQTT sender cannot go on"]
    assert errors[0].exc_info is None


def test_any_other_failure_to_build_a_link_is_fatal_too(outbox: Outbox) -> None:
    def links() -> BrokerLink:
        raise FileNotFoundError(2, "No such file or directory")

    fatal: list[str] = []
    sender = EventSender(
        outbox,
        links,
        address=ADDRESS,
        topic_prefix=PREFIX,
        backoff=Backoff(0.005, 0.02),
        on_fatal=fatal.append,
    )
    sender.run()
    assert fatal == [
        "cannot set up the MQTT connection: FileNotFoundError: [Errno 2] No such file or directory"
    ]
    assert sender.stats().state is LinkState.FAILED


def test_a_sender_that_dies_says_so(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    fatal: list[str] = []
    sender = EventSender(
        outbox,
        broker.link,
        address=ADDRESS,
        topic_prefix=PREFIX,
        backoff=Backoff(0.005, 0.02),
        on_fatal=fatal.append,
    )

    def broken(_seconds: float) -> None:
        raise RuntimeError("clock\nbroken")

    broker.refuse = BrokerRefusedError("refused", 135, "Not authorized")
    monkeypatch.setattr(sender._clock, "sleep", broken)  # fails between two attempts
    sender.run()
    assert fatal == ["MQTT sender died: RuntimeError: clock broken"]
    assert sender.stats().state is LinkState.FAILED

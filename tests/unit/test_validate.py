"""Validation of incoming messages: what is accepted, and why everything else is rejected."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.intake import Inbound, classify, dead_letter
from aggregator.validate import (
    Accepted,
    AcceptedStatus,
    LiveWindow,
    Reason,
    Rejected,
    validate,
    validate_event,
)
from footfall.contract import AgentAddress, AgentState, Channel
from footfall.contract.examples import example_event, example_status

PREFIX = "footfall/v1"
TOPIC = "footfall/v1/site-a/spot-1/agent-1/events"
EVENT = example_event().to_json()


def _doc(**changes: object) -> bytes:
    doc = json.loads(EVENT)
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_valid_event_on_its_own_topic_is_accepted() -> None:
    outcome = validate(PREFIX, TOPIC, EVENT)
    assert isinstance(outcome, Accepted)
    assert outcome.event.to_json() == EVENT


@pytest.mark.parametrize("channel", [Channel.STATUS, Channel.HEARTBEAT])
def test_status_and_heartbeat_are_accepted(channel: Channel) -> None:
    outcome = validate(
        PREFIX, f"footfall/v1/site-a/spot-1/agent-1/{channel}", example_status().to_json()
    )
    assert isinstance(outcome, AcceptedStatus) and outcome.channel is channel
    assert outcome.status.state is AgentState.ONLINE


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "field", "detail"),
    [
        (
            "footfall/v1/site-a/spot-1/agent-2/events",
            EVENT,
            Reason.IDENTITY_MISMATCH,
            "agent",
            "agent 'agent-1' in the payload but 'agent-2' in the topic",
        ),
        (
            "footfall/v1/site-b/spot-9/agent-1/events",
            EVENT,
            Reason.IDENTITY_MISMATCH,
            "site",
            "site 'site-a' in the payload but 'site-b' in the topic, "
            "spot 'spot-1' in the payload but 'spot-9' in the topic",
        ),
        (
            "footfall/v1/site-a/spot-1/agent-2/heartbeat",
            example_status().to_json(),
            Reason.IDENTITY_MISMATCH,
            "agent",
            "agent 'agent-1' in the payload but 'agent-2' in the topic",
        ),
        (TOPIC, b"{not json", Reason.INVALID, "payload", None),
        (TOPIC, b"\xff\xfe", Reason.INVALID, "payload", "payload: not valid UTF-8 (byte 0)"),
        (TOPIC, _doc(track_id="7"), Reason.INVALID, "track_id", None),
        (TOPIC, _doc(track_id=7.0), Reason.INVALID, "track_id", None),
        (
            TOPIC,
            _doc(schema_version=True),
            Reason.INVALID,
            "schema_version",
            "schema_version: must be the integer 1, got bool",
        ),
        (
            TOPIC,
            _doc(schema_version=1.0),
            Reason.INVALID,
            "schema_version",
            "schema_version: must be the integer 1, got float",
        ),
        (TOPIC, _doc(crop_note="bell \x07"), Reason.INVALID, "crop_note", None),
        (TOPIC, _doc(site="=cmd|' /C calc'!A0"), Reason.INVALID, "site", None),
        (TOPIC, _doc(surprise=1), Reason.INVALID, "surprise", None),
        (TOPIC, b"[" * 5000 + b"]" * 5000, Reason.INVALID, "payload", None),
        (
            TOPIC,
            b" " * 16385,
            Reason.TOO_LARGE,
            "payload",
            "16385 bytes exceeds the limit of 16384",
        ),
        ("other/v1/site-a/spot-1/agent-1/events", EVENT, Reason.BAD_TOPIC, "topic", None),
        ("footfall/v1/site-a/spot-1/events", EVENT, Reason.BAD_TOPIC, "topic", None),
        ("footfall/v1/site-a/spot-1/agent-1/gossip", EVENT, Reason.BAD_TOPIC, "topic", None),
        ("footfall/v1/site+/spot-1/agent-1/events", EVENT, Reason.BAD_TOPIC, "topic", None),
        (
            "footfall/v1/site-a/spot-1/agent-1/config",
            b"{}",
            Reason.UNEXPECTED_CHANNEL,
            "topic",
            "channel 'config' is not consumed",
        ),
    ],
    ids=[
        "other-agent",
        "other-site-and-spot",
        "heartbeat-for-another",
        "broken-json",
        "not-utf8",
        "wrong-type",
        "float-for-int",
        "true-for-version-1",
        "float-for-version-1",
        "control-char",
        "formula-in-id",
        "unknown-field",
        "deep-nesting",
        "too-large",
        "wrong-prefix",
        "too-few-levels",
        "unknown-channel",
        "wildcard-in-id",
        "config-channel",
    ],
)
def test_rejections_name_reason_and_field(
    topic: str, payload: bytes, reason: Reason, field: str, detail: str | None
) -> None:
    outcome = validate(PREFIX, topic, payload)
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.field) == (reason, field)
    if detail is not None:
        assert outcome.detail == detail


def test_formula_looking_free_text_is_valid_text() -> None:
    outcome = validate(PREFIX, TOPIC, _doc(crop_note='=HYPERLINK("http://x")'))
    assert isinstance(outcome, Accepted)
    assert outcome.event.crop_note == '=HYPERLINK("http://x")'


def test_a_rejection_keeps_the_address_of_a_valid_topic() -> None:
    outcome = validate(PREFIX, TOPIC, b"{}")
    assert isinstance(outcome, Rejected)
    assert outcome.address == AgentAddress("site-a", "spot-1", "agent-1")


def test_the_size_limit_is_configurable() -> None:
    assert isinstance(validate(PREFIX, TOPIC, EVENT, max_bytes=len(EVENT)), Accepted)
    outcome = validate(PREFIX, TOPIC, EVENT, max_bytes=len(EVENT) - 1)
    assert isinstance(outcome, Rejected) and outcome.reason is Reason.TOO_LARGE


def test_replayed_lines_have_no_topic_to_check_identity_against() -> None:
    assert isinstance(validate_event(EVENT), Accepted)


def test_classify_sorts_a_batch_and_truncates_kept_payloads() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    big_bad = b'{"x": "' + b"y" * 9000 + b'"}'
    messages = [
        Inbound(TOPIC, EVENT, now, "mqtt:a"),
        Inbound(TOPIC.replace("events", "status"), example_status().to_json(), now, "mqtt:a"),
        Inbound(TOPIC, big_bad, now, "mqtt:a"),
        Inbound(None, b"nope", now, "replay:f.jsonl", where="replay:f.jsonl:4"),
    ]
    got = classify(messages, prefix=PREFIX, max_payload_bytes=16384, keep_bytes=100)
    assert len(got.batch.events) == 1 and got.batch.events[0].source == "mqtt:a"
    assert len(got.batch.statuses) == 1
    first, second = got.batch.dead_letters
    assert (first.payload, first.payload_size) == (big_bad[:100], len(big_bad))
    assert (first.site, first.spot, first.agent) == ("site-a", "spot-1", "agent-1")
    assert (second.topic, second.source, second.site) == (None, "replay:f.jsonl:4", None)
    assert got.rejected == {"invalid": 2}


def test_dead_letter_of_a_bad_topic_has_no_address() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    message = Inbound("x/y", b"{}", now, "mqtt:a")
    outcome = validate(PREFIX, "x/y", b"{}")
    assert isinstance(outcome, Rejected)
    letter = dead_letter(message, outcome, 10)
    assert (letter.site, letter.reason, letter.topic) == (None, "bad_topic", "x/y")


def test_the_text_check_covers_exactly_category_cc_and_the_bidi_controls() -> None:
    import sys
    import unicodedata

    from footfall.contract.types import _FORBIDDEN_CHAR

    everything = [chr(c) for c in range(sys.maxunicode + 1)]
    cc = {c for c in everything if unicodedata.category(c) == "Cc"}
    # Unicode's Bidi_Control property: the explicit embeddings, overrides and isolates, and the
    # three marks (ALM, LRM, RLM).
    explicit = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
    bidi = {c for c in everything if unicodedata.bidirectional(c) in explicit}
    bidi |= {"\u061c", "\u200e", "\u200f"}
    assert len(bidi) == 12
    assert {c for c in everything if _FORBIDDEN_CHAR.match(c)} == cc | bidi


WINDOW = LiveWindow(max_age=timedelta(days=30), max_ahead=timedelta(seconds=600))
SEEN = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)  # first_seen of EVENT; last + 4.2 s


@pytest.mark.parametrize(
    ("received", "field", "detail"),
    [
        (SEEN + timedelta(seconds=5), None, None),
        (SEEN - timedelta(seconds=590), None, None),  # last_seen 594.2 s ahead: inside
        (SEEN + timedelta(days=30), None, None),
        (
            SEEN - timedelta(hours=2),
            "last_seen",
            "2026-05-01T12:00:04.323Z is 2.0 h ahead of the aggregator's clock (limit "
            "ingest.event_max_ahead_seconds = 600): check the agent's clock",
        ),
        (
            SEEN + timedelta(days=30, seconds=1),
            "first_seen",
            "2026-05-01T12:00:00.123Z is 30 days before the aggregator's clock (limit "
            "ingest.event_max_age_days = 30): check the agent's clock, or load old recordings "
            "with `footfall-aggregator replay`",
        ),
    ],
    ids=["just-seen", "clock-slightly-ahead", "a-month-in-the-outbox", "ahead", "too-old"],
)
def test_live_events_are_checked_against_the_clock_they_arrive_at(
    received: datetime, field: str | None, detail: str | None
) -> None:
    message = Inbound(TOPIC, EVENT, received, "mqtt:a")
    got = classify(
        [message], prefix=PREFIX, max_payload_bytes=16384, keep_bytes=4096, window=WINDOW
    )
    if field is None:
        assert len(got.batch.events) == 1 and not got.batch.dead_letters
        return
    (letter,) = got.batch.dead_letters
    assert (letter.reason, letter.field, letter.detail) == ("out_of_window", field, detail)
    assert letter.payload == EVENT and got.rejected == {"out_of_window": 1}
    # Without a window (replay, the embedded survey) the same event is stored whatever its age.
    got = classify([message], prefix=PREFIX, max_payload_bytes=16384, keep_bytes=100)
    assert len(got.batch.events) == 1


def test_statuses_are_not_held_to_the_live_window() -> None:
    # An agent's will carries the sent_at of the connection it belongs to, which may be months
    # old when the agent finally goes: it must still mark the agent offline.
    status = example_status(state=AgentState.OFFLINE).to_json()
    message = Inbound(TOPIC.replace("events", "status"), status, SEEN + timedelta(days=90), "m")
    got = classify(
        [message], prefix=PREFIX, max_payload_bytes=16384, keep_bytes=4096, window=WINDOW
    )
    assert len(got.batch.statuses) == 1

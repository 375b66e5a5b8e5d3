"""The wire contract: valid records round-trip; every kind of bad input names its field."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from footfall.contract import (
    AGE_GROUPS,
    AgeGroup,
    AgentAddress,
    AgentStatus,
    Channel,
    ContractError,
    Direction,
    FieldError,
    Gender,
    PersonEvent,
    age_group_for_years,
    decode,
    format_utc_ms,
    parse_topic,
)
from footfall.contract.examples import example_event, example_status
from footfall.contract.topics import shared, subscription
from footfall.contract.types import EARLIEST_TIMESTAMP, END_OF_TIMESTAMPS

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[leaf] = value

    return apply


def _drop(path: str) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[leaf]

    return apply


def _event_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(example_event().to_json())
    return doc


@pytest.mark.parametrize(
    "event",
    [
        example_event(),
        example_event(gender=Gender.UNKNOWN, age_years=None, with_crop=False),
        example_event(direction=Direction.PASSED, dwell_seconds=0.0),
        example_event(age_years=0.5),
        example_event(age_years=99.0, gender=Gender.MALE),
    ],
    ids=["typical", "unknown-no-crop", "passed-zero-dwell", "baby", "old"],
)
def test_valid_events_round_trip(event: PersonEvent) -> None:
    wire = event.to_json()
    assert decode(PersonEvent, wire) == event
    assert decode(PersonEvent, wire).to_json() == wire


def test_timestamps_are_utc_iso8601_with_milliseconds() -> None:
    doc = _event_doc()
    assert doc["first_seen"] == "2026-05-01T12:00:00.123Z"
    assert doc["last_seen"] == "2026-05-01T12:00:04.323Z"


def test_offset_timestamps_are_normalised_to_utc() -> None:
    doc = _event_doc()
    doc["first_seen"] = "2026-05-01T14:00:00.123+02:00"
    event = decode(PersonEvent, json.dumps(doc).encode())
    assert event.first_seen == datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (_drop("site"), "site", "Field required"),
        (_drop("gender"), "gender", "Field required"),
        (_set("track_id", "7"), "track_id", "Input should be a valid integer"),
        (_set("dwell_seconds", "4.2"), "dwell_seconds", "Input should be a valid number"),
        (_set("direction", "sideways"), "direction", "Input should be 'in', 'out' or 'passed'"),
        (
            _set("gender.label", "other"),
            "gender.label",
            "Input should be 'female', 'male' or 'unknown'",
        ),
        (_set("age.group", "teen"), "age.group", "Input should be '0-2'"),
        (_set("entry_side", "north"), "entry_side", "Input should be 'left'"),
        (_set("schema_version", 2), "schema_version", "Input should be 1"),
        (_set("event_id", "not-a-uuid"), "event_id", "Input should be a valid UUID"),
        (_set("site", "a/b"), "site", "is not a valid id"),
        (_set("spot", "+"), "spot", "is not a valid id"),
        (_set("agent", "#"), "agent", "is not a valid id"),
        (_set("site", ".."), "site", "is not a valid id"),
        (_set("site", "x" * 33), "site", "is not a valid id"),
        (_set("spot", "spot\n1"), "spot", "is not a valid id"),
        (_set("agent", ""), "agent", "is not a valid id"),
        (_set("last_seen", "2026-05-01T11:59:00.000Z"), "last_seen", "is before first_seen"),
        (_set("first_seen", "2026-05-01T12:00:00"), "first_seen", "must carry a time zone"),
        (_set("first_seen", "yesterday"), "first_seen", "Input should be a valid datetime"),
        (_set("dwell_seconds", 99.0), "dwell_seconds", "exceeds last_seen - first_seen"),
        (_set("dwell_seconds", -1.0), "dwell_seconds", "greater than or equal to 0"),
        (_set("gender.confidence", None), "gender", "confidence is required"),
        (_set("gender.confidence", 1.5), "gender.confidence", "less than or equal to 1"),
        (_set("age.years", None), "age", "are required for group"),
        (_set("age.group_probabilities.0-2", 0.9), "age", "must sum to 1"),
        (_drop("age.group_probabilities.0-2"), "age", "needs exactly the 8 groups"),
        (_set("crop.sha256", "XYZ"), "crop.sha256", "should match pattern"),
        (_set("crop.key", "../../etc/passwd"), "crop.key", "should match pattern"),
        (_set("crop_note", "bad\x07bell"), "crop_note", "control character U+0007"),
        (_set("unexpected", 1), "unexpected", "Extra inputs are not permitted"),
        (
            _set("models", [{"role": "x", "name": "n", "version": "1"}]),
            "models.0.role",
            "Input should be",
        ),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(
    mutate: Mutation, field: str, message: str
) -> None:
    doc = _event_doc()
    mutate(doc)
    with pytest.raises(ContractError) as info:
        decode(PersonEvent, json.dumps(doc).encode())
    assert field in info.value.fields, str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"x" * 20_000, "payload: 20000 bytes exceeds the limit of 16384"),
        (b"\xff\xfe{}", "payload: not valid UTF-8 (byte 0)"),
        (b'{"site": "caf\xc3', "payload: not valid UTF-8 (byte 13)"),
        (b"{not json", "payload: not JSON"),
        (b"", "payload: not JSON"),
        (b"[1, 2]", "payload: must be a JSON object"),
        (b'"a string"', "payload: must be a JSON object"),
        (b"null", "payload: must be a JSON object"),
        (b"[" * 3000 + b"]" * 3000, "payload: not JSON"),
    ],
)
def test_bad_bytes_are_rejected_as_payload_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(PersonEvent, raw)
    assert str(info.value).startswith(message)
    assert info.value.fields == ["payload"]


def test_every_missing_field_is_listed() -> None:
    with pytest.raises(ContractError) as info:
        decode(PersonEvent, b"{}")
    assert {"event_id", "site", "spot", "agent", "first_seen", "gender", "age"} <= set(
        info.value.fields
    )


def test_status_round_trips_and_will_has_no_stats() -> None:
    status = example_status()
    assert decode(AgentStatus, status.to_json()) == status
    doc = json.loads(status.to_json())
    doc["stats"] = None
    doc["state"] = "offline"
    assert decode(AgentStatus, json.dumps(doc).encode()).stats is None
    doc["stats"] = {"uptime_seconds": 1}
    with pytest.raises(ContractError) as info:
        decode(AgentStatus, json.dumps(doc).encode())
    assert "stats.frames_in" in info.value.fields


@pytest.mark.parametrize(
    ("years", "group"),
    [
        (0.0, "0-2"),
        (2.9, "0-2"),
        (3.0, "4-6"),
        (7.9, "4-6"),
        (8.0, "8-12"),
        (13.9, "8-12"),
        (14.0, "15-20"),
        (22.9, "15-20"),
        (23.0, "25-32"),
        (34.9, "25-32"),
        (35.0, "38-43"),
        (45.9, "38-43"),
        (46.0, "48-53"),
        (56.9, "48-53"),
        (57.0, "60-100"),
        (110.0, "60-100"),
    ],
)
def test_age_maps_to_nearest_group(years: float, group: str) -> None:
    assert age_group_for_years(years) == AgeGroup(group)


def test_there_are_eight_groups_youngest_first() -> None:
    assert [g.value for g in AGE_GROUPS] == [
        "0-2",
        "4-6",
        "8-12",
        "15-20",
        "25-32",
        "38-43",
        "48-53",
        "60-100",
    ]


def test_topic_layout_round_trips() -> None:
    address = AgentAddress("site-a", "spot-1", "agent-1")
    topic = address.topic("footfall/v1", Channel.EVENTS)
    assert topic == "footfall/v1/site-a/spot-1/agent-1/events"
    assert parse_topic("footfall/v1", topic) == (address, Channel.EVENTS)
    assert subscription("footfall/v1", Channel.HEARTBEAT) == "footfall/v1/+/+/+/heartbeat"
    assert (
        shared("aggs", subscription("footfall/v1", Channel.EVENTS))
        == "$share/aggs/footfall/v1/+/+/+/events"
    )


@pytest.mark.parametrize(
    "topic",
    [
        "other/site-a/spot-1/agent-1/events",
        "footfall/v1/site-a/spot-1/events",
        "footfall/v1/site-a/spot-1/agent-1/events/extra",
        "footfall/v1/site-a/spot-1/agent-1/nonsense",
        "footfall/v1/site a/spot-1/agent-1/events",
    ],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_topic("footfall/v1", topic)
    assert info.value.fields == ["topic"]


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "..", "", "a" * 33, "tab\there", "ünï"])
def test_address_refuses_unsafe_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a valid id"):
        AgentAddress(bad, "spot", "agent")


def test_format_utc_ms_truncates_to_milliseconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC) + timedelta(hours=0)
    assert format_utc_ms(moment) == "2026-01-02T03:04:05.678Z"


def _event_with(**changes: Any) -> bytes:
    doc = _event_doc()
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("first_seen", "last_seen"),
    [
        ("2000-01-01T00:00:00.000Z", "2000-01-01T00:00:04.200Z"),
        ("2099-12-31T23:59:50.000Z", "2099-12-31T23:59:59.999Z"),
        # 2100-01-01 local time in Berlin is still 2099 in UTC: the window is in UTC.
        ("2100-01-01T00:59:50.000+01:00", "2100-01-01T00:59:59.000+01:00"),
    ],
    ids=["first-day", "last-moment", "offset-inside"],
)
def test_timestamps_at_the_edges_of_the_window_are_valid(first_seen: str, last_seen: str) -> None:
    event = decode(
        PersonEvent, _event_with(first_seen=first_seen, last_seen=last_seen, dwell_seconds=1.0)
    )
    assert EARLIEST_TIMESTAMP <= event.first_seen <= event.last_seen < END_OF_TIMESTAMPS


@pytest.mark.parametrize(
    "moment",
    [
        "1999-12-31T23:59:59.999Z",
        "1970-01-01T00:00:00.000Z",
        "2100-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:00:00.000-05:00",  # after the last datetime once in UTC
        "0001-01-01T00:30:00.000+01:00",  # before the first one
    ],
)
def test_timestamps_outside_the_window_are_rejected_without_crashing(moment: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(PersonEvent, _event_with(first_seen=moment, last_seen=moment, dwell_seconds=0.0))
    assert info.value.errors[0] == FieldError(
        "first_seen", "must be within 2000-01-01 to 2099-12-31 (UTC)"
    )


def test_status_timestamps_have_the_same_window() -> None:
    doc = json.loads(example_status().to_json())
    doc["sent_at"] = "9999-12-31T00:00:00.000Z"
    with pytest.raises(ContractError) as info:
        decode(AgentStatus, json.dumps(doc).encode())
    assert info.value.fields == ["sent_at"]


def test_track_ids_fit_a_signed_64_bit_column() -> None:
    assert decode(PersonEvent, _event_with(track_id=2**63 - 1)).track_id == 2**63 - 1
    for too_big in (2**63, 10**30):
        with pytest.raises(ContractError) as info:
            decode(PersonEvent, _event_with(track_id=too_big))
        assert (
            str(info.value) == "track_id: Input should be less than or equal to 9223372036854775807"
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("frames_in", 10**30, "Input should be less than or equal to 9223372036854775807"),
        ("events_sent", 2**63, "Input should be less than or equal to 9223372036854775807"),
        ("fps", "Infinity", "Input should be a finite number"),
        ("uptime_seconds", "NaN", "Input should be a finite number"),
    ],
)
def test_status_counters_are_finite_and_fit_the_store(
    field: str, value: int | str, message: str
) -> None:
    doc = json.loads(example_status().to_json())
    doc["stats"][field] = 0
    # Infinity and NaN are not JSON, but pydantic's reader (and Python's json) take them bare.
    raw = json.dumps(doc).replace(f'"{field}": 0', f'"{field}": {value}')
    with pytest.raises(ContractError) as info:
        decode(AgentStatus, raw.encode())
    assert str(info.value) == f"stats.{field}: {message}"


@pytest.mark.parametrize(
    ("path", "char"),
    [
        ("crop_note", "\u202e"),  # right-to-left override
        ("crop_note", "\u2066"),  # left-to-right isolate
        ("crop_note", "\u200f"),  # right-to-left mark
        ("crop_note", "\u061c"),  # Arabic letter mark
        ("models.0.name", "\u202a"),  # left-to-right embedding
        ("models.0.version", "\u2069"),  # pop directional isolate
    ],
)
def test_bidirectional_controls_in_text_are_refused(path: str, char: str) -> None:
    doc = _event_doc()
    _set(path, f"crop{char}gnp.exe")(doc)
    with pytest.raises(ContractError) as info:
        decode(PersonEvent, json.dumps(doc).encode())
    assert str(info.value) == (
        f"{path}: bidirectional control character U+{ord(char):04X} is not allowed"
    )


def test_other_unicode_text_is_stored_as_sent() -> None:
    # Refusing the bidi controls is all: letters of any script, in any normalisation form, and
    # the zero-width joiner of emoji sequences stay exactly as the agent sent them.
    for note in ("Straße, 東京, مرحبا", "cafe\u0301", "👩\u200d👩\u200d👧"):
        assert decode(PersonEvent, _event_with(crop_note=note)).crop_note == note

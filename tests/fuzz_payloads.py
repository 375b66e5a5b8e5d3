"""Hypothesis strategies for messages the aggregator must reject, each labelled with its kind.

Every strategy is built so that its output is invalid by construction (a test then checks the
validator agrees): broken JSON, wrong types, huge strings, missing fields, contradictory values,
control characters, formula-looking text where the contract allows none, another agent's identity,
topics outside the layout. Formula-looking text in free-text fields is *valid* and is not here.
"""

import json
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from footfall.contract.examples import example_status, random_events

PREFIX = "footfall/v1"
SAFE_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)
CONTROL_CHARS = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))]
FORMULAS = ["=cmd|' /C calc'!A0", "=1+1", "+SUM(A1:A9)", "-2+3", "@SUM(1)", '=HYPERLINK("x")']
# Required keys (crop_note, crop.content_type, counted_by and face.note have defaults, so
# removing them is valid).
OPTIONAL_KEYS = {
    "crop_note",
    "content_type",
    "last_error",
    "counted_by",
    "note",
    "source_state",
    "source_error",
}


@dataclass(frozen=True)
class BadMessage:
    kind: str
    topic: str
    payload: bytes


def _topic(doc: dict[str, Any], channel: str = "events") -> str:
    return f"{PREFIX}/{doc['site']}/{doc['spot']}/{doc['agent']}/{channel}"


@st.composite
def event_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event as a JSON document (varied: with or without crop, unknown age, ...)."""
    seed = draw(st.integers(0, 2**32 - 1))
    event = random_events(1, rng=random.Random(seed))[0]
    doc: dict[str, Any] = json.loads(event.to_json())
    return doc


@st.composite
def status_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(example_status().to_json())
    if draw(st.booleans()):
        doc["stats"] = None
    return doc


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) in a document, containers included, root excluded."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append(((*path, key), value))
        if isinstance(value, dict | list):
            out.extend(_leaves(value, (*path, key)))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _delete(doc: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        doc = doc[key]
    del doc[path[-1]]


def _wrong_value(value: Any) -> st.SearchStrategy[Any]:
    """Values that can never be valid where ``value`` is (strict contract: no coercion)."""
    unknown_object = st.just({"zz_unknown": [1]})
    text = st.text(max_size=12)
    if isinstance(value, str):
        return st.one_of(
            st.integers(), st.booleans(), st.lists(st.integers(), max_size=2), unknown_object
        )
    if isinstance(value, bool):
        return st.one_of(text, st.integers(), unknown_object)
    if isinstance(value, int | float):
        return st.one_of(text, st.booleans(), st.lists(st.integers(), max_size=2), unknown_object)
    if isinstance(value, dict):
        return st.one_of(text, st.integers(), st.lists(st.integers(), max_size=2))
    if isinstance(value, list):
        return st.one_of(text, st.integers(), unknown_object)
    return unknown_object  # None: a nullable field given an object no field accepts


@st.composite
def wrong_type(
    draw: st.DrawFn, docs: st.SearchStrategy[dict[str, Any]], channel: str
) -> BadMessage:
    doc = draw(docs)
    topic = _topic(doc, channel)
    path, value = draw(st.sampled_from(_leaves(doc)))
    _set(doc, path, draw(_wrong_value(value)))
    return BadMessage("wrong_type", topic, json.dumps(doc).encode())


@st.composite
def missing_field(
    draw: st.DrawFn, docs: st.SearchStrategy[dict[str, Any]], channel: str
) -> BadMessage:
    doc = draw(docs)
    topic = _topic(doc, channel)
    candidates = [
        p for p, _ in _leaves(doc) if isinstance(p[-1], str) and p[-1] not in OPTIONAL_KEYS
    ]
    _delete(doc, draw(st.sampled_from(candidates)))
    return BadMessage("missing_field", topic, json.dumps(doc).encode())


def _string_paths(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p, v in _leaves(doc) if isinstance(v, str)]


@st.composite
def huge_string(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    topic = _topic(doc)
    size = draw(st.integers(600, 40_000))
    filler = draw(st.sampled_from(["a", "é", "✓", "x" * 7 + "=", "\u202e"]))
    _set(doc, draw(st.sampled_from(_string_paths(doc))), (filler * size)[:size])
    return BadMessage(
        "huge_string", topic, json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    )


@st.composite
def control_characters(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    topic = _topic(doc)
    path = draw(st.sampled_from(_string_paths(doc)))
    node: Any = doc
    for key in path:
        node = node[key]
    at = draw(st.integers(0, len(node)))
    _set(doc, path, node[:at] + draw(st.sampled_from(CONTROL_CHARS)) + node[at:])
    return BadMessage("control_char", topic, json.dumps(doc).encode())


@st.composite
def formula_where_not_allowed(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    topic = _topic(doc)
    field = draw(st.sampled_from(["site", "spot", "agent", "direction", "entry_side", "gender"]))
    formula = draw(st.sampled_from(FORMULAS))
    if field == "gender":
        doc["gender"]["label"] = formula
    else:
        doc[field] = formula
    return BadMessage("formula_in_id_or_enum", topic, json.dumps(doc).encode())


@st.composite
def contradiction(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs().filter(lambda d: d["age"]["group"] != "unknown"))
    topic = _topic(doc)
    which = draw(st.integers(0, 5))
    if which == 0:
        doc["first_seen"], doc["last_seen"] = "2026-05-01T12:00:10.000Z", "2026-05-01T12:00:00.000Z"
    elif which == 1:
        doc["dwell_seconds"] = 1e9
    elif which == 2:
        group = next(iter(doc["age"]["group_probabilities"]))
        doc["age"]["group_probabilities"][group] += draw(st.floats(0.01, 0.9))
    elif which == 3:
        doc["gender"] = {"label": "female", "confidence": draw(st.floats(0.0, 0.49))}
    elif which == 4:
        doc["age"]["group"] = "unknown"
    else:
        doc["schema_version"] = draw(st.integers(2, 99))
    return BadMessage("contradiction", topic, json.dumps(doc).encode())


@st.composite
def broken_json(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    topic = _topic(doc)
    raw = json.dumps(doc).encode()
    choice = draw(st.integers(0, 3))
    if choice == 0:
        payload = raw[: draw(st.integers(0, len(raw) - 1))]
    elif choice == 1:
        payload = draw(st.binary(max_size=300))
    elif choice == 2:
        payload = raw.replace(b'"', b"'", draw(st.integers(1, 20)))
    else:
        depth = draw(st.integers(1000, 8000))
        payload = b"[" * depth + b"]" * depth
    return BadMessage("broken_json", topic, payload)


def _another_id(old: str) -> st.SearchStrategy[str]:
    return SAFE_ID.filter(lambda v: v != old)


@st.composite
def wrong_identity(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    channel = "events"
    if draw(st.booleans()):
        doc = draw(status_docs())
        channel = draw(st.sampled_from(["status", "heartbeat"]))
    ids = {"site": doc["site"], "spot": doc["spot"], "agent": doc["agent"]}
    changed = draw(st.lists(st.sampled_from(sorted(ids)), min_size=1, unique=True))
    for key in changed:
        ids[key] = draw(_another_id(ids[key]))
    topic = f"{PREFIX}/{ids['site']}/{ids['spot']}/{ids['agent']}/{channel}"
    return BadMessage("wrong_identity", topic, json.dumps(doc).encode())


@st.composite
def too_large(draw: st.DrawFn) -> BadMessage:
    doc = draw(event_docs())
    doc["crop_note"] = "n" * draw(st.integers(17_000, 60_000))
    return BadMessage("too_large", _topic(doc), json.dumps(doc).encode())


@st.composite
def bad_topic(draw: st.DrawFn, publishable: bool = False) -> BadMessage:
    doc = draw(event_docs())
    good = [PREFIX, doc["site"], doc["spot"], doc["agent"], "events"]
    bad_ids = ["bad id", "a.b", "é", "x" * 33, "-lead", "_under", "caf\u00e9"]
    if publishable:
        # Only topics the aggregator's subscriptions match: an invalid id at one level.
        at = draw(st.integers(1, 3))
        levels = [*good[:at], draw(st.sampled_from(bad_ids)), *good[at + 1 :]]
        return BadMessage("bad_topic", "/".join(levels), json.dumps(doc).encode())
    choice = draw(st.integers(0, 5))
    if choice == 0:
        levels = ["elsewhere/v1", *good[1:]]
    elif choice == 1:
        levels = [*good[:4], "extra", "events"]
    elif choice == 2:
        levels = [*good[:3], "events"]
    elif choice == 3:
        levels = [*good[:4], draw(st.sampled_from(["gossip", "Events", "event", ""]))]
    elif choice == 4:
        levels = [PREFIX, draw(st.sampled_from([*bad_ids, "+", "#"])), *good[2:]]
    else:
        levels = [PREFIX, draw(st.text(min_size=1, max_size=40)), *good[2:]]
    return BadMessage("bad_topic", "/".join(levels), json.dumps(doc).encode())


def bad_messages(publishable: bool = False) -> st.SearchStrategy[BadMessage]:
    """Every kind of bad message. With ``publishable``, only topics that a client can publish to
    and that the aggregator's subscriptions match, so every message reaches it."""
    strategies = [
        broken_json(),
        wrong_type(event_docs(), "events"),
        wrong_type(status_docs(), "heartbeat"),
        missing_field(event_docs(), "events"),
        missing_field(status_docs(), "status"),
        huge_string(),
        control_characters(),
        formula_where_not_allowed(),
        contradiction(),
        wrong_identity(),
        too_large(),
        bad_topic(publishable),
    ]
    return st.one_of(*strategies)

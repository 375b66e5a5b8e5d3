"""Conflicting duplicates: the same event id with other content is a ``conflict`` dead letter,
the first stored copy stays, and plain copies stay silent duplicates. On SQLite, and on
PostgreSQL where the real service is available."""

import json
import logging
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.batching import Delivery, IngestLoop
from aggregator.intake import Inbound
from aggregator.replay import replay_files
from aggregator.store import EventStore, StoredEvent, WriteBatch, tables
from aggregator.store.migrations import LATEST_VERSION
from footfall.contract import Direction, Gender, PersonEvent
from footfall.contract.examples import example_event, random_events

T0 = datetime(2026, 5, 1, 13, 0, tzinfo=UTC)
TOPIC = "footfall/v1/site-a/spot-1/agent-1/events"
FIRST = example_event()
# The same id, but another person: a device that reused an id, or a tampered copy.
OTHER = example_event(event_id=FIRST.event_id, gender=Gender.MALE, direction=Direction.OUT)


def arrived(event: PersonEvent, payload: bytes | None = None, at: datetime = T0) -> StoredEvent:
    wire = payload if payload is not None else event.to_json()
    return StoredEvent(event, at, "mqtt:agg-1", payload=wire, topic=TOPIC)


def _stored(store: EventStore) -> list[PersonEvent]:
    span = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return [r.to_event() for b in store.iter_events("site-a", *span) for r in b]


def test_the_same_id_with_other_content_is_a_conflict_and_the_first_copy_stays(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.write(WriteBatch(events=[arrived(FIRST)])).events_inserted == 1
    later = T0 + timedelta(minutes=5)
    with caplog.at_level(logging.WARNING):
        result = store.write(WriteBatch(events=[arrived(OTHER, at=later)]))
    assert (result.events_inserted, result.events_duplicate, result.events_conflict) == (0, 0, 1)
    assert result.dead_letters == 1
    assert _stored(store) == [FIRST]
    (letter,) = store.dead_letters()
    detail = (
        f"event {FIRST.event_id} is stored already with other content (direction, "
        "gender.label); the copy stored first stays (received 2026-05-01 13:00:00 UTC from "
        "mqtt:agg-1)"
    )
    assert (letter.reason, letter.field, letter.detail) == ("conflict", "event_id", detail)
    assert (letter.site, letter.spot, letter.agent, letter.topic) == (
        "site-a",
        "spot-1",
        "agent-1",
        TOPIC,
    )
    assert (letter.payload, letter.received_at) == (OTHER.to_json(), later)
    assert store.dead_letter_reasons() == {"conflict": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"conflicting duplicate from site-a/spot-1/agent-1: {detail}"
    ]


def test_plain_copies_stay_silent_duplicates(store: EventStore) -> None:
    store.write(WriteBatch(events=[arrived(FIRST)]))
    # A redelivery (the same bytes) and a copy serialised differently (other key order and
    # spacing, an offset instead of Z) are the same event.
    doc = json.loads(FIRST.to_json())
    doc["first_seen"] = "2026-05-01T14:00:00.123+02:00"
    reordered = json.dumps(dict(reversed(list(doc.items()))), indent=1).encode()
    result = store.write(WriteBatch(events=[arrived(FIRST), arrived(FIRST, payload=reordered)]))
    assert (result.events_duplicate, result.events_conflict, result.dead_letters) == (2, 0, 0)
    assert store.count_dead_letters() == 0


def test_a_conflict_inside_one_batch_keeps_the_first_of_the_batch(store: EventStore) -> None:
    result = store.write(WriteBatch(events=[arrived(FIRST), arrived(FIRST), arrived(OTHER)]))
    assert (result.events_inserted, result.events_duplicate, result.events_conflict) == (1, 1, 1)
    assert _stored(store) == [FIRST]
    assert [d.payload for d in store.dead_letters()] == [OTHER.to_json()]


def test_a_batch_of_new_events_costs_no_lookup(store: EventStore) -> None:
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0].upper())

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        store.write(
            WriteBatch(events=[arrived(e) for e in random_events(50, rng=random.Random(1))])
        )
        assert "SELECT" not in statements and statements.count("INSERT") == 1
        statements.clear()
        store.write(WriteBatch(events=[arrived(FIRST)]))
        store.write(WriteBatch(events=[arrived(FIRST)]))  # a known id: now it looks
        assert "SELECT" in statements
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)


def _forget_hashes(store: EventStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(tables.events).values(content_sha256=None))


def test_events_stored_before_the_hash_existed_are_compared_by_content(store: EventStore) -> None:
    store.write(WriteBatch(events=[arrived(FIRST)]))
    _forget_hashes(store)
    copy = store.write(WriteBatch(events=[arrived(FIRST)]))
    assert (copy.events_duplicate, copy.events_conflict) == (1, 0)
    other = store.write(WriteBatch(events=[arrived(OTHER)]))
    assert (other.events_duplicate, other.events_conflict) == (0, 1)


def test_upgrading_a_version_2_store_adds_the_hash_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = EventStore.open(url)
    store.write(WriteBatch(events=[arrived(FIRST)]))
    with store.engine.begin() as conn:  # the store as version 2 left it
        conn.exec_driver_sql("ALTER TABLE events DROP COLUMN content_sha256")
        conn.exec_driver_sql("ALTER TABLE events DROP COLUMN counted_by")
        conn.exec_driver_sql("ALTER TABLE events DROP COLUMN face_note")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version >= 3")
    store.close()
    store = EventStore.open(url)
    try:
        with store.engine.connect() as conn:
            hashes = conn.execute(sa.select(tables.events.c.content_sha256)).scalars().all()
            versions = conn.execute(sa.select(tables.schema_version.c.version)).scalars().all()
        assert (hashes, sorted(versions)) == ([None], list(range(1, LATEST_VERSION + 1)))
        assert store.write(WriteBatch(events=[arrived(OTHER)])).events_conflict == 1
        assert store.write(WriteBatch(events=[arrived(FIRST)])).events_duplicate == 1
    finally:
        store.close()


class NoAcks:
    def ack(self, tokens: object) -> int:
        return 0


def test_ingest_counts_conflicts_among_its_dead_letters(store: EventStore) -> None:
    loop = IngestLoop(
        store, NoAcks(), prefix="footfall/v1", max_payload_bytes=16384, keep_bytes=4096
    )
    for event in (FIRST, FIRST, OTHER):
        loop.process(
            [Delivery(Inbound(TOPIC, event.to_json(), T0, "mqtt:a"), None)], threading.Event()
        )
    c = loop.counters
    assert (c.events_stored, c.events_duplicate, c.dead_letters) == (1, 1, 1)
    assert c.rejected == {"conflict": 1}
    assert "dead letters 1 (conflict 1)" in c.summary()


def test_replay_reports_conflicts(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(FIRST.to_json() + b"\n" + FIRST.to_json() + b"\n" + OTHER.to_json() + b"\n")
    report = replay_files([path], store)
    assert report.lines_of_text() == [
        "files: 1",
        "lines: 3",
        "stored: 1",
        "duplicates: 1",
        "rejected: 1",
        "  conflict: 1",
    ]
    (letter,) = store.dead_letters()
    assert (letter.source, letter.topic) == ("replay:events.jsonl:3", None)


def test_the_stored_hash_is_that_of_the_bytes_received(store: EventStore) -> None:
    import hashlib

    wire = b" " + FIRST.to_json()
    store.write(WriteBatch(events=[arrived(FIRST, payload=wire)]))
    with store.engine.connect() as conn:
        (stored,) = conn.execute(sa.select(tables.events.c.content_sha256)).scalars().all()
    assert bytes(stored) == hashlib.sha256(wire).digest()

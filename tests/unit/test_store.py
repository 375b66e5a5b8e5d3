"""The event store on SQLite (and on PostgreSQL where the real service is available): idempotent
writes, every field round-trips, streaming range queries, dead letters, agent status, migrations."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.errors import SchemaError, StoreError
from aggregator.store import (
    DeadLetter,
    EventStore,
    StatusRecord,
    StoredEvent,
    WriteBatch,
    migrations,
    tables,
)
from aggregator.store.store import schema_status
from footfall.contract import (
    AgeGroup,
    AgentState,
    Channel,
    Direction,
    Gender,
    PersonEvent,
    SourceState,
)
from footfall.contract.examples import example_event, example_status, random_events

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def stored(event: PersonEvent, source: str = "test") -> StoredEvent:
    return StoredEvent(event, T0 + timedelta(hours=1), source)


def all_rows(store: EventStore, site: str = "site-a") -> list[PersonEvent]:
    return [r.to_event() for b in store.iter_events(site, *EVERYTHING) for r in b]


def test_the_same_events_stored_twice_are_stored_once(store: EventStore) -> None:
    events = random_events(20, rng=random.Random(1))
    assert store.add_events([stored(e) for e in events]) == 20
    assert store.add_events([stored(e) for e in events]) == 0
    assert store.add_events([stored(e) for e in events[:5] + events[:5]]) == 0
    assert store.count_events() == 20


def test_duplicates_inside_one_batch_count_once(store: EventStore) -> None:
    event = example_event()
    assert store.add_events([stored(event)] * 3) == 1
    assert store.count_events() == 1


@pytest.mark.parametrize(
    "event",
    [
        example_event(),
        example_event(with_crop=False, gender=Gender.UNKNOWN, age_years=None),
        example_event(direction=Direction.PASSED, age_years=70.0, dwell_seconds=0.0),
        example_event(gender=Gender.MALE, age_years=1.0, track_id=2**40),
    ],
    ids=["full", "unknowns-no-crop", "passed-old", "big-track-id"],
)
def test_every_field_round_trips(store: EventStore, event: PersonEvent) -> None:
    store.add_events([stored(event)])
    (row,) = [r for b in store.iter_events("site-a", *EVERYTHING) for r in b]
    assert row.to_event() == event
    assert row.first_seen.tzinfo is UTC and row.received_at == T0 + timedelta(hours=1)
    assert row.source == "test"


def test_free_text_that_looks_like_a_formula_is_stored_verbatim(store: EventStore) -> None:
    event = example_event().model_copy(update={"crop_note": "=cmd|' /C calc'!A0 ünïcödé ✓"})
    store.add_events([stored(event)])
    assert all_rows(store)[0].crop_note == "=cmd|' /C calc'!A0 ünïcödé ✓"


def test_iter_events_streams_a_half_open_range_in_order(store: EventStore) -> None:
    events = random_events(
        300, rng=random.Random(2), spots=("north", "south"), start=T0, span_hours=10
    )
    other_site = random_events(30, rng=random.Random(3), site="site-b", start=T0, span_hours=10)
    store.add_events([stored(e) for e in events + other_site])
    start, end = T0 + timedelta(hours=2), T0 + timedelta(hours=7)
    batches = list(store.iter_events("site-a", start, end, batch_size=40))
    got = [r for b in batches for r in b]
    expected = sorted(
        (e for e in events if start <= e.first_seen < end), key=lambda e: (e.first_seen, 0)
    )
    assert [r.event_id for r in got] == [
        r.event_id for r in sorted(got, key=lambda r: (r.first_seen, r.event_id))
    ]
    assert {r.event_id for r in got} == {e.event_id for e in expected}
    assert all(len(b) == 40 for b in batches[:-1]) and 0 < len(batches[-1]) <= 40
    assert store.count_events("site-a", start, end) == len(expected)
    assert store.count_events("site-b") == 30


def test_iter_events_pages_through_events_with_identical_timestamps(store: EventStore) -> None:
    events = [
        example_event(event_id=uuid.UUID(int=random.Random(i).getrandbits(128)), first_seen=T0)
        for i in range(25)
    ]
    store.add_events([stored(e) for e in events])
    got = [r.event_id for b in store.iter_events("site-a", *EVERYTHING, batch_size=7) for r in b]
    assert sorted(got) == sorted(e.event_id for e in events)
    assert len(got) == 25


def test_iter_events_range_bounds_are_exact_to_the_millisecond(store: EventStore) -> None:
    at = T0 + timedelta(milliseconds=1)
    store.add_events([stored(example_event(first_seen=at))])
    assert store.count_events("site-a", at, at + timedelta(milliseconds=1)) == 1
    assert store.count_events("site-a", T0, at) == 0
    assert store.count_events("site-a", at + timedelta(microseconds=1), EVERYTHING[1]) == 0


def _letter(**overrides: object) -> DeadLetter:
    values: dict[str, object] = {
        "received_at": T0,
        "source": "mqtt:test",
        "topic": "footfall/v1/site-a/spot-1/agent-1/events",
        "site": "site-a",
        "spot": "spot-1",
        "agent": "agent-1",
        "reason": "invalid",
        "field": "age.group",
        "detail": "age.group: Input should be ...",
        "payload": b"\xff\xfe\x00 not utf-8",
        "payload_size": 12,
    }
    values.update(overrides)
    return DeadLetter(**values)  # type: ignore[arg-type]


def test_dead_letters_keep_raw_bytes_and_survive_hostile_text(store: EventStore) -> None:
    store.add_dead_letters(
        [
            _letter(),
            _letter(
                site=None,
                spot=None,
                agent=None,
                topic="x/\x00/\ud800" + "t" * 5000,
                field="\x00" * 500,
                detail="nul \x00 here",
                received_at=T0 + timedelta(hours=2),
            ),
        ]
    )
    newest, oldest = store.dead_letters()
    assert oldest.payload == b"\xff\xfe\x00 not utf-8"
    assert newest.topic is not None and len(newest.topic) == 1024 and "\x00" not in newest.topic
    assert newest.detail == "nul \\x00 here"
    assert store.count_dead_letters() == 2
    assert store.count_dead_letters("site-a") == 1
    assert store.count_dead_letters(None, T0 + timedelta(hours=1), T0 + timedelta(hours=3)) == 1
    assert store.dead_letter_reasons() == {"invalid": 2}


def _record(
    state: AgentState,
    sent_at: datetime,
    received_at: datetime,
    *,
    channel: Channel = Channel.HEARTBEAT,
    stats: bool = True,
) -> StatusRecord:
    status = example_status(state=state, sent_at=sent_at)
    if not stats:
        status = status.model_copy(update={"stats": None})
    return StatusRecord(channel, status, received_at)


def test_status_history_ignores_copies_and_agents_keeps_the_latest(store: EventStore) -> None:
    s = timedelta(seconds=1)
    online = _record(AgentState.ONLINE, T0, T0 + s, channel=Channel.STATUS)
    assert store.record_statuses([online, online]) == 1
    beats = [_record(AgentState.ONLINE, T0 + 30 * i * s, T0 + (30 * i + 1) * s) for i in (1, 2)]
    assert store.record_statuses(beats) == 2
    (agent,) = store.agents("site-a")
    assert agent.state is AgentState.ONLINE
    assert agent.last_seen_at == T0 + 61 * s and agent.last_sent_at == T0 + 60 * s
    assert agent.fps == 24.9 and agent.outbox_depth == 2

    # The broker's will: state offline, no stats, and the sent_at of the agent's connection.
    will = _record(AgentState.OFFLINE, T0, T0 + 80 * s, channel=Channel.STATUS, stats=False)
    assert store.record_statuses([will]) == 1
    (agent,) = store.agents()
    assert agent.state is AgentState.OFFLINE and agent.state_since == T0 + 80 * s
    assert agent.fps == 24.9, "a message without stats keeps the last known counters"

    # A late copy of an old heartbeat must not bring it back to life ...
    store.record_statuses([_record(AgentState.ONLINE, T0 + 45 * s, T0 + 81 * s)])
    assert store.agents()[0].state is AgentState.OFFLINE
    # ... a new one does.
    store.record_statuses([_record(AgentState.ONLINE, T0 + 200 * s, T0 + 201 * s)])
    (agent,) = store.agents()
    assert agent.state is AgentState.ONLINE and agent.state_since == T0 + 201 * s
    assert agent.first_seen_at == T0 + s
    assert store.agents("elsewhere") == []


def _counted(
    sent_at: datetime, *, crops: int, channel: Channel = Channel.HEARTBEAT
) -> StatusRecord:
    record = _record(AgentState.ONLINE, sent_at, sent_at, channel=channel)
    status = record.status
    assert status.stats is not None
    stats = status.stats.model_copy(update={"crops_pending": crops, "outbox_depth": crops})
    return StatusRecord(channel, status.model_copy(update={"stats": stats}), sent_at)


def test_pending_counts_come_from_the_latest_heartbeat_only(store: EventStore) -> None:
    s = timedelta(seconds=1)
    # The online status at connect counts what a previous run left: not a heartbeat, not shown.
    store.record_statuses([_counted(T0, crops=7, channel=Channel.STATUS)])
    (agent,) = store.agents()
    assert (agent.crops_pending, agent.outbox_depth, agent.pending_at) == (None, None, None)
    store.record_statuses([_counted(T0 + 30 * s, crops=0)])
    # The offline status at shutdown is built before the uploader's last crops went out.
    offline = _counted(T0 + 40 * s, crops=3, channel=Channel.STATUS)
    offline = StatusRecord(
        offline.channel,
        offline.status.model_copy(update={"state": AgentState.OFFLINE}),
        offline.received_at,
    )
    store.record_statuses([offline])
    (agent,) = store.agents()
    assert agent.state is AgentState.OFFLINE
    assert (agent.crops_pending, agent.outbox_depth) == (0, 0)
    assert agent.pending_at == T0 + 30 * s
    # A heartbeat delivered late (older than the one held) does not replace its counts.
    store.record_statuses([_counted(T0 + 20 * s, crops=5)])
    assert store.agents()[0].crops_pending == 0
    store.record_statuses([_counted(T0 + 60 * s, crops=2)])
    (agent,) = store.agents()
    assert (agent.crops_pending, agent.pending_at) == (2, T0 + 60 * s)


def test_source_state_and_error_are_stored_and_old_heartbeats_still_fit(
    store: EventStore,
) -> None:
    record = _record(AgentState.ONLINE, T0, T0)
    assert record.status.stats is not None
    assert record.status.stats.source_state is None  # as from an agent that predates them
    store.record_statuses([record])
    (agent,) = store.agents()
    assert (agent.source_state, agent.source_error) == (None, None)
    stats = record.status.stats.model_copy(
        update={
            "source_state": SourceState.RECONNECTING,
            "source_error": "video source rtsp://127.0.0.1:1 cannot be opened",
        }
    )
    later = StatusRecord(
        Channel.HEARTBEAT,
        record.status.model_copy(update={"sent_at": T0 + timedelta(seconds=30), "stats": stats}),
        T0 + timedelta(seconds=30),
    )
    store.record_statuses([later])
    (agent,) = store.agents()
    assert agent.source_state is SourceState.RECONNECTING
    assert agent.source_error == "video source rtsp://127.0.0.1:1 cannot be opened"


def test_coverage_intervals_from_heartbeats_and_statuses(store: EventStore) -> None:
    s = timedelta(seconds=1)
    records = [
        _record(AgentState.ONLINE, T0, T0, channel=Channel.STATUS),
        *(_record(AgentState.ONLINE, T0 + 30 * i * s, T0 + 30 * i * s) for i in range(1, 11)),
        # silence of 10 minutes (> 3 x 30 s), then heartbeats again and a goodbye
        *(
            _record(AgentState.ONLINE, T0 + (900 + 30 * i) * s, T0 + (900 + 30 * i) * s)
            for i in range(4)
        ),
        _record(AgentState.OFFLINE, T0 + 1000 * s, T0 + 1000 * s, channel=Channel.STATUS),
    ]
    store.record_statuses(records)
    got = store.coverage_intervals("site-a", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert got == {"spot-1": [(T0, T0 + 300 * s), (T0 + 900 * s, T0 + 1000 * s)]}
    clipped = store.coverage_intervals("site-a", T0 + 100 * s, T0 + 950 * s)
    assert clipped == {"spot-1": [(T0 + 100 * s, T0 + 300 * s), (T0 + 900 * s, T0 + 950 * s)]}
    assert store.coverage_intervals("site-b", *EVERYTHING) == {}


def test_fresh_store_is_at_the_latest_schema_and_upgrade_is_idempotent(store: EventStore) -> None:
    found = migrations.status(store.engine)
    assert found.current == migrations.LATEST_VERSION and found.up_to_date
    assert migrations.upgrade(store.engine) == []


def test_migrated_schema_matches_the_table_definitions(store: EventStore) -> None:
    inspector = sa.inspect(store.engine)
    for table in tables.metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
    indexes = {i["name"] for t in tables.metadata.tables for i in inspector.get_indexes(t)}
    assert {i.name for t in tables.metadata.sorted_tables for i in t.indexes} <= indexes


def test_opening_without_upgrade_refuses_an_old_or_newer_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    sa.create_engine(url).connect().close()  # an empty database: version 0
    with pytest.raises(SchemaError) as info:
        EventStore.open(url, upgrade=False)
    assert str(info.value) == (
        "the store's schema is at version 0, this software needs "
        f"{migrations.LATEST_VERSION}: run `footfall-aggregator db upgrade`"
    )
    EventStore.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tables.schema_version).values(version=99, description="x", applied_at=T0)
        )
    engine.dispose()
    for upgrade in (False, True):
        with pytest.raises(SchemaError, match="version 99, newer than this software knows"):
            EventStore.open(url, upgrade=upgrade)


def test_read_only_use_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    for attempt in (
        lambda: EventStore.open(f"sqlite:///{path}", upgrade=False),
        lambda: schema_status(f"sqlite:///{path}"),
    ):
        with pytest.raises(StoreError, match=r"typo\.db: no such database file"):
            attempt()
    assert not path.exists()


def test_write_commits_a_whole_batch_or_nothing(store: EventStore) -> None:
    event = example_event()
    bad_letter = _letter(payload=None)  # NOT NULL column: the whole batch must roll back
    with pytest.raises(sa.exc.IntegrityError):
        store.write(WriteBatch(events=[stored(event)], dead_letters=[bad_letter]))
    assert store.count_events() == 0
    result = store.write(WriteBatch(events=[stored(event)], dead_letters=[_letter()]))
    assert (result.events_inserted, result.dead_letters) == (1, 1)


def test_iter_event_columns_matches_iter_events_on_every_backend(store: EventStore) -> None:
    events = random_events(120, rng=random.Random(8), start=T0, span_hours=2)
    store.add_events([stored(e) for e in events])
    rows = [r for b in store.iter_events("site-a", *EVERYTHING) for r in b]
    batches = list(store.iter_event_columns("site-a", *EVERYTHING, batch_size=50))
    assert [len(b["event_id"]) for b in batches] == [50, 50, 20]
    columns = {k: [v for b in batches for v in b[k]] for k in batches[0]}
    assert columns["event_id"] == [str(r.event_id) for r in rows]
    assert columns["first_seen"] == [r.first_seen for r in rows]
    assert all(t.tzinfo is UTC for t in columns["received_at"])
    assert columns["gender"] == [r.gender.value for r in rows]
    assert [json.loads(m) for m in columns["models"]] == [
        [m.model_dump(mode="json") for m in r.models] for r in rows
    ]
    assert columns["age_p_25_32"] == [
        r.age_probabilities[AgeGroup.G25_32] if r.age_probabilities else None for r in rows
    ]
    (only,) = store.iter_event_columns("site-a", *EVERYTHING, columns=["spot", "dwell_seconds"])
    assert list(only) == ["spot", "dwell_seconds"] and len(only["spot"]) == 120
    with pytest.raises(ValueError, match="not columns of the events table: nope"):
        next(store.iter_event_columns("site-a", *EVERYTHING, columns=["nope"]))

"""The durable outbox: order, acknowledgement, removal, the size cap and its crop policy, crashes."""

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import Synchronous
from edge_agent.delivery.outbox import (
    NOTE_DISK_LOW,
    NOTE_OVER_CAP,
    Outbox,
    OutboxCounters,
    OutboxError,
    OutboxFullError,
)
from footfall.contract import PersonEvent
from footfall.contract.topics import AgentAddress
from tests.delivery_support import synthetic_events

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def events(
    n: int, *, crop_bytes: int | None = 2000, seed: int = 1
) -> list[tuple[PersonEvent, bytes | None]]:
    return list(
        synthetic_events(n, seed=seed, address=ADDRESS, crop_bytes=crop_bytes, exact_size=True)
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", synchronous=Synchronous.NORMAL, clock=Clock())
    yield box
    box.close()


def test_events_come_out_in_put_order_and_leave_only_when_acknowledged(outbox: Outbox) -> None:
    items = events(5, crop_bytes=None)
    seqs = [outbox.put(e, c) for e, c in items]
    assert seqs == sorted(seqs)

    batch = outbox.next_unsent(3)
    assert [b.seq for b in batch] == seqs[:3]
    assert [b.event_id for b in batch] == [str(e.event_id) for e, _ in items[:3]]
    assert batch[0].payload == items[0][0].to_json()
    assert [b.seq for b in outbox.next_unsent(10, after_seq=seqs[2])] == seqs[3:]

    # Looking is not sending: nothing left the outbox yet.
    assert outbox.depth() == 5
    assert outbox.mark_published([seqs[1], seqs[0]], confirmed=True) == 2
    # A late duplicate PUBACK changes nothing.
    assert outbox.mark_published([seqs[0]], confirmed=True) == 0
    assert [b.seq for b in outbox.next_unsent(10)] == seqs[2:]
    assert outbox.status().entries == 3
    assert outbox.counters().events_published == 2


def test_event_with_crop_stays_until_both_are_done(outbox: Outbox) -> None:
    (e1, c1), (e2, c2) = events(2)
    s1, s2 = outbox.put(e1, c1), outbox.put(e2, c2)
    assert outbox.crops_pending() == 2

    # Published first, crop later.
    outbox.mark_published([s1], confirmed=True)
    assert outbox.depth() == 1 and outbox.status().entries == 2
    crops = outbox.next_crops(10)
    assert [(c.seq, c.key, c.data) for c in crops] == [
        (s1, e1.crop.key if e1.crop else "", c1),
        (s2, e2.crop.key if e2.crop else "", c2),
    ]
    assert outbox.mark_crop_stored(s1)
    assert not outbox.mark_crop_stored(s1)
    assert outbox.status().entries == 1

    # Crop first, published later.
    assert outbox.mark_crop_stored(s2)
    assert outbox.status().entries == 1
    outbox.mark_published([s2], confirmed=True)
    status = outbox.status()
    assert (status.entries, status.depth, status.crops_pending, status.bytes) == (0, 0, 0, 0)
    assert status.counters == OutboxCounters(
        events_accepted=2,
        events_published=2,
        events_confirmed=2,
        crops_accepted=2,
        crops_stored=2,
    )


def test_duplicate_event_id_is_stored_once(outbox: Outbox) -> None:
    [(event, crop)] = events(1)
    first = outbox.put(event, crop)
    assert outbox.put(event, crop) == first
    assert outbox.put_many([(event, crop), (event, crop)]) == [first, first]
    counters = outbox.counters()
    assert (counters.events_accepted, counters.events_duplicate) == (1, 3)
    assert outbox.depth() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-bytes", "event.crop is set but no crop bytes"),
        ("bytes-without-ref", "crop bytes given but event.crop is null"),
        ("size", "event.crop.size_bytes says"),
        ("sha", "!= event.crop.sha256"),
    ],
)
def test_crop_must_match_its_reference(outbox: Outbox, change: str, message: str) -> None:
    [(event, crop)] = events(1)
    assert crop is not None
    if change == "no-bytes":
        args: tuple[PersonEvent, bytes | None] = (event, None)
    elif change == "bytes-without-ref":
        args = (event.model_copy(update={"crop": None}), crop)
    elif change == "size":
        args = (event, crop + b"x")
    else:
        args = (event, bytes([crop[0] ^ 1]) + crop[1:])
    with pytest.raises(ValueError, match=message):
        outbox.put(*args)
    assert outbox.status().entries == 0


def test_over_the_cap_drops_oldest_crops_first_and_notes_it(tmp_path: Path) -> None:
    items = events(6, crop_bytes=4000)
    sizes = [len(e.to_json()) + len(c or b"") for e, c in items]
    # Room for four events with their crops and a bit: each further put must free one crop,
    # and one is enough (a dropped crop frees its 4000 bytes, the note costs far less).
    box = Outbox(tmp_path / "o.db", max_bytes=sum(sizes[:4]) + 1500, clock=Clock())
    seqs = [box.put(e, c) for e, c in items[:4]]
    # The oldest crop belongs to an event already sent and confirmed.
    box.mark_published([seqs[0]], confirmed=True)
    assert box.counters().crops_dropped == 0

    box.put(*items[4])
    box.put(*items[5])
    counters = box.counters()
    assert counters.crops_dropped == 2
    assert counters.crops_dropped_after_publish == 1
    pending = [c.seq for c in box.next_crops(10)]
    assert pending == [*seqs[2:], seqs[-1] + 1, seqs[-1] + 2]

    # The unpublished event whose crop went has it said in the payload it will be sent with.
    unsent = {u.seq: PersonEvent.model_validate_json(u.payload) for u in box.next_unsent(10)}
    assert unsent[seqs[1]].crop is None
    assert unsent[seqs[1]].crop_note == NOTE_OVER_CAP
    assert unsent[seqs[2]].crop is not None and unsent[seqs[2]].crop_note is None
    # The published one whose crop went is gone entirely.
    assert seqs[0] not in unsent and box.status().entries == 5
    assert box.status().bytes <= box.max_bytes
    box.close()


def test_the_cap_never_drops_a_crop_whose_upload_began(tmp_path: Path) -> None:
    items = events(4, crop_bytes=4000)
    sizes = [len(e.to_json()) + len(c or b"") for e, c in items]
    box = Outbox(tmp_path / "o.db", max_bytes=sum(sizes[:3]) + 1500, clock=Clock())
    seqs = [box.put(e, c) for e, c in items[:3]]
    assert box.claim_crop(seqs[0])
    [first, *_] = box.next_crops(10)
    assert first.seq == seqs[0] and first.claimed

    fourth = box.put(*items[3])  # over the cap: one crop must go, not the claimed one
    assert [c.seq for c in box.next_crops(10)] == [seqs[0], seqs[2], fourth]
    unsent = {u.seq: PersonEvent.model_validate_json(u.payload) for u in box.next_unsent(10)}
    assert unsent[seqs[0]].crop is not None
    assert unsent[seqs[1]].crop is None and unsent[seqs[1]].crop_note == NOTE_OVER_CAP
    # A crop the cap took cannot be claimed: the uploader must not upload it.
    assert not box.claim_crop(seqs[1])

    # The claim outlives the process and ends when the crop is stored.
    box.close()
    with Outbox(tmp_path / "o.db", max_bytes=box.max_bytes, clock=Clock()) as again:
        assert again.crops_claimed() == 1
        assert [c.claimed for c in again.next_crops(10)] == [True, False, False]
        assert again.mark_crop_stored(seqs[0])
        assert again.crops_claimed() == 0


def test_with_only_claimed_crops_left_the_cap_gives_way(tmp_path: Path) -> None:
    items = events(2, crop_bytes=4000)
    room = len(items[0][0].to_json()) + 4000 + 500  # the first event with its crop, no more
    box = Outbox(tmp_path / "o.db", max_bytes=room, clock=Clock())
    seq = box.put(*items[0])
    assert box.claim_crop(seq)
    second = box.put(*items[1])
    # The new event's own crop goes; the claimed one stays, over the cap by its own size.
    assert [c.seq for c in box.next_crops(10)] == [seq]
    assert box.counters().crops_dropped == 1
    assert box.status().bytes > box.max_bytes
    assert box.drop_crop(seq, NOTE_OVER_CAP) and box.crops_claimed() == 0
    assert {u.seq for u in box.next_unsent(10)} == {seq, second}
    box.close()


def test_events_are_never_dropped_even_far_over_the_cap(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=5000, clock=Clock())
    items = events(30, crop_bytes=3000)
    for event, crop in items:
        box.put(event, crop)
    status = box.status()
    assert status.depth == 30
    assert status.crops_pending == 0  # every crop had to go, its own included
    assert status.counters.crops_dropped == 30
    assert status.bytes > box.max_bytes
    sent = [PersonEvent.model_validate_json(u.payload) for u in box.next_unsent(100)]
    assert [str(e.event_id) for e in sent] == [str(e.event_id) for e, _ in items]
    assert all(e.crop is None and e.crop_note == NOTE_OVER_CAP for e in sent)
    box.close()


def test_low_disk_drops_crops_like_the_cap(tmp_path: Path) -> None:
    free = {"bytes": 10**9}
    box = Outbox(
        tmp_path / "o.db",
        min_free_disk_bytes=10**6,
        clock=Clock(),
        free_disk=lambda _: free["bytes"],
    )
    items = events(3, crop_bytes=2000)
    s1, s2 = box.put_many(items[:2])
    free["bytes"] = 10
    s3 = box.put(*items[2])
    # Disk use must not grow: the new event and crop take the place of the two oldest crops.
    assert [c.seq for c in box.next_crops(10)] == [s3]
    notes = [PersonEvent.model_validate_json(u.payload).crop_note for u in box.next_unsent(10)]
    assert notes == [NOTE_DISK_LOW, NOTE_DISK_LOW, None]
    assert s1 < s2 < s3
    box.close()


def test_full_disk_drops_crops_then_refuses_the_event_loudly(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", clock=Clock())
    box.put_many(events(20, crop_bytes=3000, seed=5))
    conn = box._file.conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    # A disk that is full at the current size: only dropping crops makes room.
    conn.execute(f"PRAGMA max_page_count={pages}")
    box.put_many(events(10, crop_bytes=None, seed=6))
    assert box.counters().crops_dropped == 20
    assert box.depth() == 30

    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(OutboxFullError, match="event\\(s\\) NOT stored"):
        box.put_many(events(200, crop_bytes=None, seed=7))
    assert box.depth() == 30
    box.close()


def test_counters_and_contents_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    items = events(4)
    with Outbox(path, clock=Clock()) as box:
        seqs = box.put_many(items)
        box.mark_published(seqs[:2], confirmed=True)
        box.mark_crop_stored(seqs[0])
    with Outbox(path, clock=Clock()) as box:
        assert [u.seq for u in box.next_unsent(10)] == seqs[2:]
        assert [c.seq for c in box.next_crops(10)] == seqs[1:]
        assert box.counters() == OutboxCounters(
            events_accepted=4,
            events_published=2,
            events_confirmed=2,
            crops_accepted=4,
            crops_stored=1,
        )
        # AUTOINCREMENT: a new event never reuses the seq of one that left.
        assert box.put(*events(1, seed=9)[0]) == seqs[-1] + 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox(path).close()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError, match="written by a newer agent"):
        Outbox(path)


def test_status_reports_depth_ages_and_bytes(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    items = events(3)
    box.put(*items[0])
    clock.now += 30
    box.put_many(items[1:])
    clock.now += 12
    status = box.status()
    assert status.depth == 3 and status.crops_pending == 3
    assert status.oldest_unsent_age_seconds == 42
    assert status.oldest_crop_age_seconds == 42
    assert status.bytes == sum(len(e.to_json()) + len(c or b"") for e, c in items)
    assert status.file_bytes > status.bytes
    box.close()


def test_accepted_events_survive_kill_9(tmp_path: Path) -> None:
    """A child process puts events one by one and reports each seq after put() returned; it is
    killed with SIGKILL in the middle. Every reported event must be in the file."""
    path = tmp_path / "o.db"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from edge_agent.delivery.outbox import Outbox
        from footfall.contract.topics import AgentAddress
        from tests.delivery_support import synthetic_events
        box = Outbox(Path({str(path)!r}))
        address = AgentAddress("site-a", "spot-1", "agent-1")
        for event, crop in synthetic_events(3000, seed=3, address=address, crop_bytes=3000):
            box.put(event, crop)
            print(event.event_id, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    reported = [proc.stdout.readline().strip() for _ in range(150)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reported += [line.strip() for line in proc.stdout if line.strip()]

    with Outbox(path) as box:
        stored = [u.event_id for u in box.next_unsent(10**6)]
        counters = box.counters()
        crops = {c.event_id for c in box.next_crops(10**6)}
    assert stored[: len(reported)] == reported
    assert counters.events_accepted == len(stored) == len(crops)


def test_a_published_event_stays_until_a_receipt_confirms_it(outbox: Outbox) -> None:
    items = events(3, crop_bytes=None)
    seqs = outbox.put_many(items)
    ids = [str(e.event_id) for e, _ in items]
    assert outbox.mark_published(seqs) == 3
    # The broker has them; the device still answers for them.
    assert (outbox.depth(), outbox.unsent(), outbox.status().entries) == (3, 0, 3)
    assert outbox.next_unsent(10) == []
    assert outbox.confirm([ids[1], "not-in-the-outbox"]) == 1
    assert outbox.confirm([ids[1]]) == 0  # a receipt that comes twice changes nothing
    assert (outbox.depth(), outbox.status().entries) == (2, 2)
    # A receipt may come before the PUBACK (a copy of an earlier connection was stored).
    late = outbox.put(*events(1, seed=5, crop_bytes=None)[0])
    late_id = outbox.next_unsent(1)[0].event_id
    assert outbox.confirm([late_id]) == 1 and late not in [u.seq for u in outbox.next_unsent(9)]
    counters = outbox.counters()
    assert (counters.events_published, counters.events_confirmed) == (3, 2)


def test_unconfirmed_events_go_back_to_unsent_once_overdue(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    items = events(4, crop_bytes=None)
    seqs = box.put_many(items)
    box.mark_published(seqs[:2])
    clock.now += 20
    box.mark_published(seqs[2:])
    box.confirm([str(items[0][0].event_id)])
    clock.now += 15
    assert box.oldest_unconfirmed_age() == 35
    # Only what was published more than 30 s ago and is still unconfirmed: seqs[1].
    assert box.requeue_unconfirmed(older_than_seconds=30) == 1
    assert [u.seq for u in box.next_unsent(10)] == [seqs[1]]
    assert box.oldest_unconfirmed_age() == 15
    assert box.counters().events_requeued == 1
    box.close()


def test_a_crop_dropped_after_publication_leaves_the_payload_as_it_was_sent(
    tmp_path: Path,
) -> None:
    # A copy sent again must be byte-identical, or the store would see a conflict.
    items = events(3, crop_bytes=4000)
    sizes = [len(e.to_json()) + len(c or b"") for e, c in items]
    box = Outbox(tmp_path / "o.db", max_bytes=sum(sizes[:2]) + 1500, clock=Clock())
    seqs = box.put_many(items[:2])
    sent = box.next_unsent(1)[0].payload
    box.mark_published([seqs[0]])  # published, not confirmed
    box.put(*items[2])  # over the cap: the oldest crop goes
    assert box.counters().crops_dropped_after_publish == 1
    assert box.requeue_unconfirmed(older_than_seconds=-1) == 1
    assert box.next_unsent(1)[0].payload == sent
    box.confirm([str(items[0][0].event_id)])
    assert seqs[0] not in [u.seq for u in box.next_unsent(10)]
    assert box.status().entries == 2
    box.close()


def test_a_version_1_outbox_counts_what_it_published_as_confirmed(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "o.db"
    items = events(2, crop_bytes=None)
    with Outbox(path, clock=Clock()) as box:
        seqs = box.put_many(items)
    conn = sqlite3.connect(path)
    # What a version 1 file looks like: no confirmation columns; one event published.
    conn.executescript(
        "DROP INDEX events_unconfirmed;"
        "ALTER TABLE events DROP COLUMN confirmed_at;"
        "ALTER TABLE events DROP COLUMN ever_published;"
        f"UPDATE events SET published_at = 1.0 WHERE seq = {seqs[0]};"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    with Outbox(path, clock=Clock()) as box:
        assert box.depth() == 1
        assert [u.seq for u in box.next_unsent(10)] == [seqs[1]]


def test_a_crop_dropped_while_its_event_is_in_flight_leaves_the_payload_too(
    tmp_path: Path,
) -> None:
    # Handed to the connection, no PUBACK yet: the broker may already hold this copy.
    items = events(3, crop_bytes=4000)
    sizes = [len(e.to_json()) + len(c or b"") for e, c in items]
    box = Outbox(tmp_path / "o.db", max_bytes=sum(sizes[:2]) + 1500, clock=Clock())
    seqs = box.put_many(items[:2])
    taken = box.take_unsent(1)
    assert [t.seq for t in taken] == seqs[:1]
    assert [t.seq for t in box.take_unsent(5, skip=[seqs[0]])] == seqs[1:2]
    box.put(*items[2])  # over the cap: the oldest crop goes
    assert box.next_unsent(1)[0].payload == taken[0].payload
    assert box.counters().crops_dropped_after_publish == 1
    box.close()

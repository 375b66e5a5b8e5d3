"""Crop uploads from the outbox: content type and metadata, retries while the store is down,
integrity check, independence from event publishing."""

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.backoff import Backoff
from edge_agent.config import Synchronous
from edge_agent.crop_uploader import CropUploader
from edge_agent.outbox import NOTE_CORRUPT, Outbox, PendingCrop
from footfall.contract import PersonEvent
from footfall.contract.topics import AgentAddress
from footfall.objectstore import MemoryObjectStore
from tests.delivery_support import synthetic_events

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", synchronous=Synchronous.NORMAL)
    yield box
    box.close()


def uploader(outbox: Outbox, store: MemoryObjectStore) -> CropUploader:
    return CropUploader(
        outbox, store, address=ADDRESS, backoff=Backoff(0.005, 0.02), idle_seconds=0.01
    )


def test_crops_are_uploaded_with_type_and_metadata(outbox: Outbox) -> None:
    items = list(synthetic_events(5, seed=1, address=ADDRESS, crop_bytes=3000))
    outbox.put_many(items)
    store = MemoryObjectStore()
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: outbox.crops_pending() == 0, "every crop uploaded")
    assert up.stop(1.0)
    for event, jpeg in items:
        assert event.crop is not None
        data, content_type, meta = store.objects[event.crop.key]
        assert data == jpeg and content_type == "image/jpeg"
        assert meta == {
            "sha256": event.crop.sha256,
            "site": "site-a",
            "spot": "spot-1",
            "agent": "agent-1",
            "event-id": str(event.event_id),
        }
        assert event.crop.key == f"site-a/spot-1/{event.first_seen:%Y-%m-%d}/{event.event_id}.jpg"
    # The events themselves still wait for the broker: crops and events are independent.
    assert outbox.depth() == 5 and up.stats().crops_uploaded == 5


def test_store_down_crops_wait_and_all_arrive_after_recovery(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryObjectStore()
    store.fail_with = "put s3://b/k: Could not connect to the endpoint URL"
    up = uploader(outbox, store)
    caplog.set_level(logging.DEBUG, logger="edge_agent.crop_uploader")
    up.start()
    items = list(synthetic_events(8, seed=2, address=ADDRESS, crop_bytes=2000))
    outbox.put_many(items[:4])
    wait_for(lambda: up.stats().upload_failures >= 3, "failing uploads")
    # Events are unaffected: publishing them does not wait for their crops.
    outbox.mark_published(u.seq for u in outbox.next_unsent(10))
    outbox.put_many(items[4:])
    stats = up.stats()
    assert stats.failing and stats.last_error is not None
    assert "Could not connect" in stats.last_error
    assert outbox.crops_pending() == 8 and store.objects == {}

    store.fail_with = None
    wait_for(lambda: outbox.crops_pending() == 0, "recovery")
    assert up.stop(1.0)
    assert {e.crop.key for e, _ in items if e.crop} == set(store.objects)
    assert outbox.status().entries == 4  # only the events not yet published remain
    assert not up.stats().failing
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # one line for the outage, not one per retry


def test_corrupt_crop_is_dropped_not_uploaded(outbox: Outbox) -> None:
    [(event, jpeg)] = list(synthetic_events(1, seed=3, address=ADDRESS, crop_bytes=2000))
    assert jpeg is not None
    seq = outbox.put(event, jpeg)
    # Bit rot on the device.
    outbox._conn().execute("UPDATE crops SET data = ? WHERE seq = ?", (b"x" + jpeg[1:], seq))
    store = MemoryObjectStore()
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: outbox.crops_pending() == 0, "the crop handled")
    assert up.stop(1.0)
    assert store.objects == {} and up.stats().crops_corrupt == 1
    sent = PersonEvent.model_validate_json(outbox.next_unsent(1)[0].payload)
    assert sent.crop is None and sent.crop_note == NOTE_CORRUPT


def test_stop_with_the_store_down_leaves_crops_in_the_outbox(outbox: Outbox) -> None:
    outbox.put_many(list(synthetic_events(3, seed=4, address=ADDRESS, crop_bytes=1000)))
    store = MemoryObjectStore()
    store.fail_with = "down"
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: up.stats().upload_failures >= 1, "a failure")
    assert up.stop(0.05)
    assert outbox.crops_pending() == 3


def test_an_outbox_error_does_not_end_the_loop(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    outbox.put_many(list(synthetic_events(3, seed=5, address=ADDRESS, crop_bytes=1000)))
    real = outbox.next_crops
    failures = {"left": 2}

    def flaky(limit: int, *, after_seq: int = 0) -> list[PendingCrop]:
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real(limit, after_seq=after_seq)

    monkeypatch.setattr(outbox, "next_crops", flaky)
    store = MemoryObjectStore()
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: len(store.objects) == 3, "the uploads after the errors")
    assert up.stop(1.0)

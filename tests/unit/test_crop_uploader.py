"""Crop uploads from the outbox: content type and metadata, retries while the store is down,
integrity check, independence from event publishing."""

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from edge_agent.config import Synchronous
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.crop_uploader import CropUploader, ReopeningStore
from edge_agent.delivery.outbox import NOTE_CORRUPT, NOTE_OVER_CAP, Outbox, PendingCrop
from footfall.connections import ObjectStoreSettings
from footfall.contract import PersonEvent
from footfall.contract.topics import AgentAddress
from footfall.objectstore import MemoryObjectStore, ObjectStore
from tests.delivery_support import synthetic_events, wait_for

ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", synchronous=Synchronous.NORMAL)
    yield box
    box.close()


def uploader(outbox: Outbox, store: ObjectStore) -> CropUploader:
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
    caplog.set_level(logging.DEBUG, logger="edge_agent.delivery.crop_uploader")
    up.start()
    items = list(synthetic_events(8, seed=2, address=ADDRESS, crop_bytes=2000))
    outbox.put_many(items[:4])
    wait_for(lambda: up.stats().upload_failures >= 3, "failing uploads")
    # Events are unaffected: publishing them does not wait for their crops.
    outbox.mark_published((u.seq for u in outbox.next_unsent(10)), confirmed=True)
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
    outbox._file.conn().execute("UPDATE crops SET data = ? WHERE seq = ?", (b"x" + jpeg[1:], seq))
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


class _CapDuringPut(MemoryObjectStore):
    """A store during whose PUTs the pipeline keeps putting events into a full outbox."""

    def __init__(self, outbox: Outbox, burst: list[tuple[PersonEvent, bytes | None]]) -> None:
        super().__init__()
        self.outbox = outbox
        self.burst = burst

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if self.burst:
            self.outbox.put(*self.burst.pop(0))
        super().put_bytes(key, data, content_type=content_type, metadata=metadata)


def test_a_crop_being_uploaded_is_not_dropped_by_the_cap(tmp_path: Path) -> None:
    items = list(synthetic_events(40, seed=6, address=ADDRESS, crop_bytes=4000, exact_size=True))
    room = sum(len(e.to_json()) + 4000 for e, _ in items[:4])
    box = Outbox(tmp_path / "o.db", max_bytes=room, synchronous=Synchronous.NORMAL)
    box.put_many(items[:4])
    store = _CapDuringPut(box, items[4:])
    up = uploader(box, store)
    up.start()
    wait_for(lambda: box.crops_pending() == 0, "the uploads")
    assert up.stop(1.0)

    counters = box.counters()
    # The cap was at work during the uploads, on crops already read for upload too.
    assert counters.crops_dropped >= 3 and up.stats().crops_skipped >= 1
    sent = {
        e.event_id: e
        for e in (PersonEvent.model_validate_json(u.payload) for u in box.next_unsent(100))
    }
    named = {e.crop.key for e in sent.values() if e.crop is not None}
    # Every object is named by its event, and the three counts agree.
    assert set(store.objects) == named
    assert up.stats().crops_uploaded == counters.crops_stored == len(store.objects)
    accepted = 40 - len(store.burst)
    assert counters.crops_stored + counters.crops_dropped == counters.crops_accepted == accepted
    box.close()


def test_a_crop_dropped_after_it_was_read_is_not_uploaded(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(event, jpeg)] = list(synthetic_events(1, seed=7, address=ADDRESS, crop_bytes=2000))
    seq = outbox.put(event, jpeg)
    real = outbox.next_crops

    def read_then_cap(limit: int, *, after_seq: int = 0) -> list[PendingCrop]:
        crops = real(limit, after_seq=after_seq)
        if crops:
            outbox.drop_crop(seq, NOTE_OVER_CAP)  # what a put over the cap does meanwhile
        return crops

    monkeypatch.setattr(outbox, "next_crops", read_then_cap)
    store = MemoryObjectStore()
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: up.stats().crops_skipped == 1, "the skip")
    assert up.stop(1.0)
    assert store.objects == {} and up.stats().crops_uploaded == 0


@pytest.mark.parametrize("in_store", [True, False])
def test_a_claimed_crop_gone_bad_keeps_what_the_store_has(outbox: Outbox, in_store: bool) -> None:
    """A process died during an upload and the bytes rotted before the next start: if the earlier
    upload got through, the event keeps naming its object; otherwise the crop is dropped."""
    [(event, jpeg)] = list(synthetic_events(1, seed=8, address=ADDRESS, crop_bytes=2000))
    assert jpeg is not None and event.crop is not None
    seq = outbox.put(event, jpeg)
    assert outbox.claim_crop(seq)
    store = MemoryObjectStore()
    if in_store:
        store.put_bytes(
            event.crop.key,
            jpeg,
            content_type="image/jpeg",
            metadata={"sha256": event.crop.sha256},
        )
    outbox._file.conn().execute("UPDATE crops SET data = ? WHERE seq = ?", (b"x" + jpeg[1:], seq))
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: outbox.crops_pending() == 0, "the crop handled")
    assert up.stop(1.0)
    sent = PersonEvent.model_validate_json(outbox.next_unsent(1)[0].payload)
    counters = outbox.counters()
    if in_store:
        assert sent.crop == event.crop and store.objects[event.crop.key][0] == jpeg
        assert counters.crops_stored == up.stats().crops_uploaded == 1
    else:
        assert sent.crop is None and sent.crop_note == NOTE_CORRUPT and store.objects == {}
        assert counters.crops_dropped == up.stats().crops_corrupt == 1
    assert outbox.crops_claimed() == 0


class _Opened:
    """Makes a MemoryObjectStore per call, remembering the secret each one was made with."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.stores: list[MemoryObjectStore] = []
        self.secrets: list[str | None] = []
        self.fail_with = fail_with

    def __call__(self, settings: ObjectStoreSettings) -> ObjectStore:
        store = MemoryObjectStore()
        path = settings.secret_access_key_file
        secret = path.read_text(encoding="utf-8").strip() if path is not None else None
        # The wrong secret fails like S3's SignatureDoesNotMatch; the right one works.
        store.fail_with = self.fail_with if secret == "wrong" else None
        self.stores.append(store)
        self.secrets.append(secret)
        return store


def test_a_corrected_s3_secret_file_takes_effect_without_a_restart(
    outbox: Outbox, tmp_path: Path
) -> None:
    secret = tmp_path / "s3.secret"
    secret.write_text("wrong\n", encoding="utf-8")
    settings = ObjectStoreSettings(
        bucket="crops", access_key_id="AK", secret_access_key_file=secret
    )
    opened = _Opened(fail_with="put s3://crops/k: SignatureDoesNotMatch")
    store = ReopeningStore(settings, opened)
    outbox.put_many(list(synthetic_events(3, seed=9, address=ADDRESS, crop_bytes=1000)))
    up = uploader(outbox, store)
    up.start()
    wait_for(lambda: up.stats().upload_failures >= 3, "failing uploads")
    assert len(opened.stores) == 1  # the same secret: no new client for every retry

    secret.write_text("right\n", encoding="utf-8")
    wait_for(lambda: outbox.crops_pending() == 0, "the uploads with the new secret")
    assert up.stop(1.0)
    assert opened.secrets == ["wrong", "right"] and len(opened.stores[1].objects) == 3


def test_an_s3_secret_file_gone_ends_the_uploader_with_one_line(
    outbox: Outbox, tmp_path: Path
) -> None:
    secret = tmp_path / "s3.secret"
    secret.write_text("right\n", encoding="utf-8")
    settings = ObjectStoreSettings(
        bucket="crops", access_key_id="AK", secret_access_key_file=secret
    )
    opened = _Opened()
    store = ReopeningStore(settings, opened)
    opened.stores[0].fail_with = "put s3://crops/k: Could not connect to the endpoint URL"
    secret.unlink()  # while the client it was read into keeps working, nothing happens
    fatal: list[str] = []
    up = CropUploader(
        outbox,
        store,
        address=ADDRESS,
        backoff=Backoff(0.005, 0.02),
        idle_seconds=0.01,
        on_fatal=fatal.append,
    )
    outbox.put_many(list(synthetic_events(2, seed=10, address=ADDRESS, crop_bytes=1000)))
    up.start()
    assert up.join(5.0)
    line = f"s3.secret_access_key_file {secret}: cannot read it: No such file or directory"
    assert fatal == [line]
    stats = up.stats()
    assert stats.failed and stats.last_error == line
    assert outbox.crops_pending() == 2


def test_an_uploader_that_dies_says_so(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    class Died(BaseException):
        pass

    def dies(limit: int, *, after_seq: int = 0) -> list[PendingCrop]:
        raise Died("thread\nkilled")

    monkeypatch.setattr(outbox, "next_crops", dies)
    fatal: list[str] = []
    up = CropUploader(
        outbox,
        MemoryObjectStore(),
        address=ADDRESS,
        backoff=Backoff(0.005, 0.02),
        on_fatal=fatal.append,
    )
    up.run()
    assert fatal == ["crop uploader died: Died: thread killed"]
    assert up.stats().failed and up.stats().stopped

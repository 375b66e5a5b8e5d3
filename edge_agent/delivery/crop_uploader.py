"""Uploading face crops from the outbox to the object store, independently of MQTT.

Events never wait for their crops: an event names the key its crop will have (computed on the
device), is published as soon as the broker takes it, and the crop follows whenever the store is
reachable. While S3 is down the crops wait in the outbox (within its cap) and are retried with
backoff, oldest first; after recovery every one of them is uploaded.

Each object gets ``Content-Type: image/jpeg`` and metadata ``sha256``, ``site``, ``spot``,
``agent`` and ``event-id``; server-side encryption comes from the store's settings. The bytes
are checked against the sha256 the event carries before upload: a crop that no longer matches
is dropped (and counted) rather than stored under an event that vouches for other bytes.

No orphans: every object this loop puts is named by the event that leaves the device. The
outbox's cap drops the oldest pending crops - the very ones this loop is uploading - and rewrites
an unpublished event whose crop went to ``crop: null``; a crop dropped mid-upload used to stay in
the store with nothing pointing to it. So before each PUT the crop is *claimed* in the outbox
(:meth:`~edge_agent.delivery.outbox.Outbox.claim_crop`, committed first), and the cap never drops a
claimed crop. A crop the cap took between being read and being claimed is skipped, never
uploaded. The claim lasts until the crop is marked stored: a failed PUT keeps it (a PUT that timed
out may have reached the store), and the retry starts from that crop. Why this rather than
deleting a dropped crop from the store afterwards, or uploading only once the event was published,
is in :mod:`edge_agent.delivery.outbox` ("Crops and the object store").

What is retried and what ends the uploader: whatever the store answers (unreachable, refused,
a wrong key) is retried for ever with backoff, oldest crop first. A :class:`ReopeningStore`
reads its secret key file again after a failed request, so a corrected secret takes effect
without a restart; when that file can no longer be read, the uploader cannot go on: it ends and
hands one line to ``on_fatal`` (the agent then stops and exits non-zero), as it does when anything
else escapes its loop. The crops stay in the outbox.

What the counters count, so that they can be compared:

- :attr:`UploaderStats.crops_uploaded` (metric ``crops_uploaded_total``): crops this process saw
  into the store and marked stored in the outbox; since the process started.
- the outbox's ``crops_stored`` (``outbox status``: "stored"): the same, over the outbox file's
  life. With one uploader on the outbox, the first grows exactly as much as the second during a
  process's life; and objects in the store = ``crops_stored``, over the file's life.
- the outbox's ``crops_dropped``: crops given up on the device (cap, disk, corruption); none of
  them is in the store. ``crops_accepted = crops_stored + crops_dropped + pending``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.outbox import NOTE_CORRUPT, Outbox, PendingCrop
from edge_agent.delivery.preflight import SetupError, read_secret_file
from edge_agent.delivery.worker import DeliveryWorker
from footfall.connections import ObjectStoreSettings
from footfall.contract.topics import AgentAddress
from footfall.objectstore import ObjectStore, ObjectStoreError, StoredObject

log = logging.getLogger(__name__)

CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class UploaderStats:
    crops_uploaded: int = 0  # in the store and marked stored by this process
    crops_skipped: int = 0  # dropped by the cap after being read, before the upload began
    upload_failures: int = 0
    crops_corrupt: int = 0
    failing: bool = False
    last_error: str | None = None
    stopped: bool = False
    failed: bool = False  # ended because it cannot go on (see the module docstring)


def crop_metadata(address: AgentAddress, crop: PendingCrop) -> dict[str, str]:
    return {
        "sha256": crop.sha256,
        "site": address.site,
        "spot": address.spot,
        "agent": address.agent,
        "event-id": crop.event_id,
    }


class CropUploader(DeliveryWorker[UploaderStats]):
    """The upload loop; runs in its own thread (:meth:`start`) or the caller's (:meth:`run`)."""

    thread_name = "crop-uploader"
    title = "crop uploader"
    fatal_errors = (SetupError,)
    # An upload already under way may take the store's own timeouts to give up.
    stop_grace_seconds = 60.0

    def __init__(
        self,
        outbox: Outbox,
        store: ObjectStore,
        *,
        address: AgentAddress,
        backoff: Backoff,
        batch: int = 16,
        idle_seconds: float = 1.0,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        """``on_fatal``: called once, from the uploader's thread, with one line saying why it
        cannot go on."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        super().__init__(UploaderStats(), on_fatal)
        self._outbox = outbox
        self._store = store
        self._address = address
        self._backoff = backoff
        self._batch = batch
        self._idle = idle_seconds
        self._signal = outbox.subscribe()

    def request_stop(self, drain_seconds: float) -> None:
        super().request_stop(drain_seconds)
        self._signal.set()  # an idle wait ends at once

    def _out_of_time(self) -> bool:
        return self._clock.out_of_time()

    def _wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, a put arrives, or the drain deadline."""
        seconds = self._clock.left(seconds)
        if seconds > 0:
            self._signal.wait(seconds)

    def _loop(self) -> None:
        while not self._out_of_time():
            try:
                if not self._round():
                    break
            except SetupError:
                raise
            except Exception as exc:
                # The loop must outlive anything (e.g. the outbox's disk filling up); the
                # crops stay where they are.
                log.exception("crop uploader error; retrying: %s", exc)
                self._update(last_error=f"crop uploader error: {exc}")
                self._clock.sleep(self._backoff.next_delay())

    def _ended(self, failure: str | None) -> None:
        if failure is None:
            self._update(stopped=True)
            log.info("crop uploader stopped")
        else:
            self._update(stopped=True, failed=True, last_error=failure)

    def _round(self) -> bool:
        """Upload one batch; False when stopping and nothing is left."""
        self._signal.clear()
        crops = self._outbox.next_crops(self._batch)
        if not crops:
            if self._clock.stopping.is_set():
                return False
            self._wait(self._idle)
            return True
        for crop in crops:
            if self._out_of_time():
                break
            if not self.upload(crop):
                # Back off, then start again from the oldest pending crop.
                self._clock.sleep(self._backoff.next_delay())
                break
        return True

    def upload(self, crop: PendingCrop) -> bool:
        """Upload one crop and mark it stored; False when the store failed (to retry later)."""
        digest = hashlib.sha256(crop.data).hexdigest()
        if digest != crop.sha256:
            return self._corrupt(crop, digest)
        if not crop.claimed and not self._outbox.claim_crop(crop.seq):
            # The cap dropped it after next_crops() read it: its event no longer names it.
            self._count("crops_skipped")
            return True
        try:
            self._store.put_bytes(
                crop.key,
                crop.data,
                content_type=CONTENT_TYPE,
                metadata=crop_metadata(self._address, crop),
            )
        except SetupError:
            raise
        except Exception as exc:
            self._failed(crop, exc)
            return False
        self._stored(crop)
        return True

    def _stored(self, crop: PendingCrop) -> None:
        marked = self._outbox.mark_crop_stored(crop.seq)
        if not marked:
            # Only another uploader on the same outbox (e.g. ``deliver`` beside ``run``) gets
            # here: a claimed crop is never dropped. It counts the crop, not this process.
            log.debug("crop of event %s was already marked stored", crop.event_id)
        with self._lock:
            recovered = self._stats.failing
            self._stats = replace(
                self._stats,
                crops_uploaded=self._stats.crops_uploaded + int(marked),
                failing=False,
                last_error=None,
            )
        self._backoff.reset()
        if recovered:
            log.info("object store reachable again; uploading the crops that waited")

    def _corrupt(self, crop: PendingCrop, digest: str) -> bool:
        if crop.claimed:
            # An upload began before the bytes went bad on the device (the process died during
            # it). If it got through, the store holds the right bytes and the event may keep
            # naming them; dropping the crop now would leave that object an orphan.
            try:
                found = self._store.head(crop.key)
            except SetupError:
                raise
            except Exception as exc:
                self._failed(crop, exc)
                return False
            if found is not None and found.metadata.get("sha256") == crop.sha256:
                log.warning(
                    "crop of event %s: the bytes on the device no longer match, but an earlier "
                    "upload of the right ones is in the store; keeping that",
                    crop.event_id,
                )
                self._stored(crop)
                return True
        log.error(
            "crop of event %s: stored bytes hash to %s, the event says %s; dropping it",
            crop.event_id,
            digest,
            crop.sha256,
        )
        self._outbox.drop_crop(crop.seq, NOTE_CORRUPT)
        self._count("crops_corrupt")
        return True

    def _failed(self, crop: PendingCrop, exc: Exception) -> None:
        expected = isinstance(exc, ObjectStoreError)
        message = f"crop upload failed, will retry: {exc}"
        with self._lock:
            first = not self._stats.failing
            self._stats = replace(
                self._stats,
                upload_failures=self._stats.upload_failures + 1,
                failing=True,
                last_error=message,
            )
        if first:
            # Events keep flowing meanwhile; only the crops wait.
            # The store's own errors name the key already; anything else gets it and a trace.
            if expected:
                log.error("%s", message)
            else:
                log.error("%s (key %s)", message, crop.key, exc_info=True)
        else:
            log.debug("%s", message)


class ReopeningStore:
    """An :class:`ObjectStore` made from ``settings`` by ``open``, and made again after a failed
    request if the secret key file changed meanwhile: a corrected secret takes effect without a
    restart, as a corrected MQTT password file does at the next connection attempt. A secret file
    that can no longer be read raises :class:`SetupError` (the uploader then ends)."""

    def __init__(
        self,
        settings: ObjectStoreSettings,
        make: Callable[[ObjectStoreSettings], ObjectStore],
    ) -> None:
        self._settings = settings
        self._make = make
        self._secret = self._read_secret()
        self._store = make(settings)
        self._stale = False  # the last request failed: look at the secret file again

    def _read_secret(self) -> str | None:
        path = self._settings.secret_access_key_file
        return None if path is None else read_secret_file("s3.secret_access_key_file", path)

    def _current(self) -> ObjectStore:
        if self._stale:
            self._stale = False
            secret = self._read_secret()
            if secret != self._secret:
                log.info(
                    "s3.secret_access_key_file %s changed; using the new secret key",
                    self._settings.secret_access_key_file,
                )
                self._store = self._make(self._settings)
                self._secret = secret
        return self._store

    def _failed(self) -> None:
        self._stale = True

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        store = self._current()
        try:
            store.put_bytes(key, data, content_type=content_type, metadata=metadata)
        except Exception:
            self._failed()
            raise

    def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        store = self._current()
        try:
            store.put_file(key, path, content_type=content_type, metadata=metadata)
        except Exception:
            self._failed()
            raise

    def head(self, key: str) -> StoredObject | None:
        store = self._current()
        try:
            return store.head(key)
        except Exception:
            self._failed()
            raise

    def get_bytes(self, key: str) -> bytes:
        store = self._current()
        try:
            return store.get_bytes(key)
        except Exception:
            self._failed()
            raise

    def presigned_get(self, key: str, expires_seconds: int) -> str:
        return self._current().presigned_get(key, expires_seconds)

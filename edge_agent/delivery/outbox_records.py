"""The records the outbox hands out and the errors it raises: what the sender, the crop
uploader, the heartbeat and ``footfall-agent outbox status`` read from it
(:mod:`edge_agent.delivery.outbox`)."""

from dataclasses import dataclass, fields
from enum import IntEnum

NOTE_OVER_CAP = "crop dropped on the device: the outbox reached its size cap"
NOTE_DISK_LOW = "crop dropped on the device: the disk was nearly full"
NOTE_CORRUPT = "crop dropped on the device: the stored bytes no longer matched their sha256"


class CropState(IntEnum):
    NONE = 0  # the event has no crop
    PENDING = 1  # in the crops table, waiting for upload
    STORED = 2  # in the object store
    DROPPED = 3  # given up on the device (cap, disk, corruption); see crop_note


class OutboxError(Exception):
    """The outbox file cannot be used (e.g. written by a newer version)."""


class OutboxFullError(OutboxError):
    """The disk is full even after every pending crop was dropped: the event was NOT stored."""


@dataclass(frozen=True)
class OutboxEntry:
    """An event waiting for its PUBACK."""

    seq: int
    event_id: str
    payload: bytes
    created_at: float


@dataclass(frozen=True)
class PendingCrop:
    """A crop waiting for upload."""

    seq: int
    event_id: str
    key: str
    sha256: str
    data: bytes
    created_at: float
    # Its upload began and did not finish (a failed PUT, or a process that died during one):
    # the object may be in the store already.
    claimed: bool = False


@dataclass(frozen=True)
class OutboxCounters:
    """Lifetime counters of one outbox file (they survive restarts)."""

    events_accepted: int = 0
    events_duplicate: int = 0  # put again while still in the outbox; ignored
    events_published: int = 0  # acknowledged by the broker (PUBACK)
    events_confirmed: int = 0  # named by an aggregator's receipt (or the PUBACK, confirm=broker)
    events_requeued: int = 0  # published, receipt overdue: published again
    crops_accepted: int = 0
    crops_stored: int = 0  # the object store acknowledged the upload; the event names the key
    crops_dropped: int = 0
    # Dropped after their event had already been published: the cloud's copy of the event still
    # names the crop's key, and no object will ever be there.
    crops_dropped_after_publish: int = 0


COUNTER_NAMES = tuple(f.name for f in fields(OutboxCounters))


@dataclass(frozen=True)
class OutboxStatus:
    depth: int  # events not yet confirmed (in the store as far as the device knows)
    entries: int  # rows still in the outbox (unsent events or pending crops)
    crops_pending: int
    bytes: int  # payloads + pending crops, what the cap is measured against
    max_bytes: int
    file_bytes: int  # the database, its WAL and shared-memory file on disk
    oldest_unsent_age_seconds: float | None
    oldest_crop_age_seconds: float | None
    counters: OutboxCounters

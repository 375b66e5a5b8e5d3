"""The JSON-lines folder sink: where ``footfall-agent process`` writes, and what the aggregator's
replay reads.

Folder format (version 1)::

    <folder>/events.jsonl        one PersonEvent per line
    <folder>/crops/<crop.key>    the face crop of each event whose "crop" is not null

- ``events.jsonl``: UTF-8, one JSON object per line, each line ending in ``\\n``; each object is
  exactly the wire form of the contract (``PersonEvent.to_json()``, decodable with
  ``footfall.contract.decode(PersonEvent, line)``). Lines are in the order people finished;
  several runs may append to the same folder, and ``event_id`` is unique, so a reader can
  deduplicate on it.
- ``crops/<crop.key>``: the JPEG, at the event's ``crop.key``
  (``<site>/<spot>/<yyyy-mm-dd UTC>/<event_id>.jpg``); its sha256 and size are those in
  ``crop``. Events with ``crop: null`` have no file (crop policy ``drop``).

Durability: for each event the crop is written first (temporary file, fsync, rename, fsync of
the directory), then the event line is appended, flushed and fsynced before ``emit`` returns.
So no event line ever lacks its crop, and a crash loses at most the event being written: a torn
last line (no ``\\n``) is cut off when the folder is next opened for writing, and readers skip
it; a crop without an event line is harmless. One writer at a time: the sink holds an exclusive
lock on ``events.jsonl``.
"""

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from footfall.contract import ContractError, PersonEvent, decode

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
CROPS_DIR = "crops"


class SinkError(Exception):
    """The folder cannot be written (in use, not writable); one line naming it and why."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(fh: BinaryIO, path: Path) -> None:
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    # Walk back to the last complete line; everything after it is a write cut short by a crash.
    pos = size
    keep = 0
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = pos + nl + 1
            break
    log.warning("%s: removing %d bytes of a torn last line", path, size - keep)
    fh.truncate(keep)
    fh.flush()
    os.fsync(fh.fileno())


class JsonlFolderSink:
    """An :class:`~edge_agent.vision.sinks.EventSink` writing the folder format above."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.crops_dir = folder / CROPS_DIR
        try:
            self.crops_dir.mkdir(parents=True, exist_ok=True)
            self._fh = (folder / EVENTS_FILE).open("a+b")
        except OSError as exc:
            raise SinkError(
                f"{folder}: cannot write events there ({exc.strerror}); choose a folder "
                "this user may write"
            ) from None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise SinkError(f"{folder}: another process is writing events there") from None
        _cut_torn_tail(self._fh, folder / EVENTS_FILE)
        self.emitted = 0

    def emit(self, event: PersonEvent, crop_jpeg: bytes | None) -> None:
        if (crop_jpeg is None) != (event.crop is None):
            raise ValueError("crop_jpeg must be given exactly when the event has a crop")
        if event.crop is not None and crop_jpeg is not None:
            if hashlib.sha256(crop_jpeg).hexdigest() != event.crop.sha256:
                raise ValueError(f"crop of event {event.event_id} does not match its sha256")
            self._write_crop(event.crop.key, crop_jpeg)
        self._fh.write(event.to_json() + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.emitted += 1

    def _write_crop(self, key: str, data: bytes) -> None:
        target = self.crops_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
        _fsync_dir(target.parent)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


@dataclass(frozen=True)
class StoredEvent:
    event: PersonEvent
    crop_path: Path | None  # where its crop is, if it has one and the file exists


def read_events(folder: Path) -> Iterator[StoredEvent]:
    """Every complete event in the folder, in file order. A torn last line is skipped; any
    other line that is not a valid event raises :class:`ContractError` naming its line."""
    path = folder / EVENTS_FILE
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                log.warning("%s:%d: skipping a torn last line", path, number)
                return
            try:
                event = decode(PersonEvent, line.rstrip(b"\n"))
            except ContractError as exc:
                raise ContractError(
                    [type(e)(f"line {number}: {e.field}", e.message) for e in exc.errors]
                ) from None
            crop = folder / CROPS_DIR / event.crop.key if event.crop is not None else None
            yield StoredEvent(event, crop if crop is not None and crop.is_file() else None)

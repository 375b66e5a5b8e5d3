"""A small face picture per person in the person lists: where crops are read from, how they are
shrunk, and which rows get one.

The crop of each event is read through a :class:`CropReader` (a local folder here, the object
store in :mod:`aggregator.delivery.crops`), shrunk to a thumbnail and kept in memory until the
package is written (:mod:`aggregator.report.drawing`). Only the first ``per_sheet`` people with a
crop on each sheet get a picture: a million-row sheet with a million images would not open, and
past the bound the crop link still leads to the full picture. A crop that cannot be read or
decoded is counted and its row keeps its link and note; it never fails the workbook.
"""

import logging
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

THUMBNAIL_PX = 48
PICTURE_ROW_HEIGHT = 40.0  # points: 53 px, room for a 48 px thumbnail and its margin
PICTURE_COLUMN_WIDTH = 9.0  # characters: ~68 px
DEFAULT_PER_SHEET = 2000


class CropReader(Protocol):
    """Where the face crops of a workbook's events are read from, by crop key."""

    def read(self, key: str) -> bytes | None:
        """The crop's JPEG, or ``None`` when there is none under ``key`` (or it cannot be read)."""
        ...


class FolderCropReader:
    """Crops under a local folder at ``<root>/<crop key>`` (the survey's ``crops/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def read(self, key: str) -> bytes | None:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):  # keys are validated upstream; belt and braces
            log.warning("crop key %r leaves the crop folder; ignored", key)
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    width: int  # pixels as displayed
    height: int


@dataclass(frozen=True)
class Picture:
    row: int  # 1-based sheet row
    name: str  # shown as the picture's description (the event id)
    thumbnail: Thumbnail


def make_thumbnail(jpeg: bytes, size: int = THUMBNAIL_PX) -> Thumbnail | None:
    """Shrink a crop so its longer side is ``size`` px; ``None`` if it is not a readable JPEG.

    The cloud side does not install OpenCV (the ``aggregator`` extra leaves it out); without it
    the crop, already small (the agent's ``crops.size``, 128 px by default), is embedded as it is
    and only displayed at ``size``.
    """
    try:
        import cv2
        import numpy as np
    except ImportError:
        dims = jpeg_dimensions(jpeg)
        if dims is None:
            return None
        w, h = _fit(*dims, size)
        return Thumbnail(jpeg, w, h)
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    w, h = _fit(width, height, size)
    if (w, h) != (width, height):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return Thumbnail(bytes(buf.tobytes()), w, h) if ok else None


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    """Scale so the longer side is at most ``size`` (never enlarged)."""
    longer = max(width, height)
    if longer <= size:
        return width, height
    return max(1, round(width * size / longer)), max(1, round(height * size / longer))


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, or ``None`` if there is none."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return (width, height) if width and height else None
        i += 2 + length
    return None


class PersonPictures:
    """Chooses, reads and shrinks the pictures of every spot's person list in one workbook.

    Rows are addressed by a person's index in its spot's list: person ``i`` is on part
    ``i // rows_per_sheet`` at row ``i % rows_per_sheet + 2``, as
    :class:`~aggregator.report.bulk_sheet.PersonListWriter` splits the list.
    """

    def __init__(
        self,
        reader: CropReader | None,
        per_sheet: int,
        rows_per_sheet: int,
        *,
        size: int = THUMBNAIL_PX,
        threads: int = 8,
    ) -> None:
        if per_sheet < 0:
            raise ValueError(f"per_sheet must be >= 0, got {per_sheet}")
        if rows_per_sheet < 1:
            raise ValueError(f"rows_per_sheet must be >= 1, got {rows_per_sheet}")
        self.reader = reader if per_sheet > 0 else None
        self.per_sheet = per_sheet
        self.rows_per_sheet = rows_per_sheet
        self.size = size
        self.threads = threads
        self.embedded = 0
        self.missing = 0  # chosen for a picture but not readable: link and note stay
        self._sheets: dict[tuple[str, int], list[Picture]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def add(
        self, spot: str, first_index: int, keys: Sequence[object], names: Sequence[object]
    ) -> set[int]:
        """Pictures for a batch of ``spot``'s rows starting at person ``first_index``; returns
        the offsets into ``keys`` that got one (those rows are made tall enough)."""
        if self.reader is None:
            return set()
        chosen: list[tuple[int, int, str]] = []  # offset, part, key
        room: dict[int, int] = {}
        for offset, key in enumerate(keys):
            if not isinstance(key, str) or not key:
                continue  # no crop (policy drop, or no face seen)
            part = (first_index + offset) // self.rows_per_sheet
            if part not in room:
                room[part] = self.per_sheet - len(self._sheets.get((spot, part), ()))
            if room[part] > 0:
                room[part] -= 1
                chosen.append((offset, part, key))
        if not chosen:
            return set()
        got: set[int] = set()
        thumbs = self._thumbnails(key for _, _, key in chosen)
        for (offset, part, _), thumb in zip(chosen, thumbs, strict=True):
            if thumb is None:
                self.missing += 1
                continue
            row = (first_index + offset) % self.rows_per_sheet + 2
            self._sheets.setdefault((spot, part), []).append(
                Picture(row, str(names[offset]), thumb)
            )
            got.add(offset)
        self.embedded += len(got)
        return got

    def for_sheet(self, spot: str, part: int) -> list[Picture]:
        return self._sheets.get((spot, part), [])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _thumbnails(self, keys: Iterable[str]) -> list[Thumbnail | None]:
        # Reads are network round trips with the object store: a few in flight at once.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="crop-read")
        return list(self._pool.map(self._one, keys))

    def _one(self, key: str) -> Thumbnail | None:
        assert self.reader is not None
        try:
            data = self.reader.read(key)
        except Exception:  # a crop is decoration: whatever a reader raises, the row keeps its link
            log.warning("reading crop %s failed", key, exc_info=True)
            return None
        return make_thumbnail(data, self.size) if data else None

"""Replay: import PersonEvents from JSON-lines files (one event per line, as the vision
pipeline's ``process`` command writes them, see :mod:`edge_agent.delivery.jsonl_sink`) through the same
validation and store as live ingest. Events already stored are counted as duplicates, so
replaying a file twice is harmless, and so is replaying a folder that is still being written: its
unterminated last line is skipped.

Lines are read with a length cap, so a file with an absurd line (or no newlines at all) costs
bounded memory; such a line becomes a ``too_large`` dead letter like an oversized MQTT payload.
"""

import gzip
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import sqlalchemy.exc as sa_exc

from aggregator.batching import BatchWriter
from aggregator.errors import ReplayError, StoreError
from aggregator.intake import Inbound, classify, dead_letter
from aggregator.store import CONFLICT, DeadLetter
from aggregator.validate import Reason, Rejected
from footfall.contract import MAX_EVENT_BYTES

log = logging.getLogger(__name__)

PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.ndjson")
_READ_CHUNK = 1 << 16


@dataclass
class ReplayReport:
    files: int = 0
    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    unterminated: int = 0  # last lines without a newline: skipped, neither stored nor rejected
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def lines_of_text(self) -> list[str]:
        out = [
            f"files: {self.files}",
            f"lines: {self.lines}",
            f"stored: {self.stored}",
            f"duplicates: {self.duplicates}",
            f"rejected: {self.rejected_total}",
        ]
        out += [f"  {reason}: {n}" for reason, n in sorted(self.rejected.items())]
        if self.unterminated:
            out.append(f"skipped unterminated last lines: {self.unterminated}")
        return out


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files to replay: each file as given, and the JSON-lines files inside each directory.

    Every path is checked before anything is stored, so a typo fails the whole run up front.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted({p for pattern in PATTERNS for p in path.glob(pattern) if p.is_file()})
            if not found:
                raise ReplayError(f"{path}: no {', '.join(PATTERNS)} files in this directory")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif path.exists():
            raise ReplayError(f"{path}: not a regular file")
        else:
            raise ReplayError(f"{path}: file not found")
    return out


def _open(path: Path) -> BinaryIO:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read ({exc.strerror})") from None


def read_lines(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes, int, bool]]:
    """``(line number, content, size, terminated)`` of each non-blank line, without its line
    ending. ``terminated`` is False only for a last line with no newline.

    ``size`` is the line's real length; for a line longer than ``max_bytes`` only its first
    ``max_bytes + 2`` bytes are kept in ``content`` and the rest is skipped unread into memory.
    """
    number = 0
    limit = max_bytes + 2  # room for "\r\n" after a line of exactly max_bytes
    while True:
        chunk = fh.readline(limit)
        if not chunk:
            return
        number += 1
        size, tail = len(chunk), chunk[-2:]
        if len(chunk) == limit and not chunk.endswith(b"\n"):
            while tail and not tail.endswith(b"\n"):
                rest = fh.readline(_READ_CHUNK)
                size += len(rest)
                tail = (tail + rest)[-2:] if rest else b""
        if tail.endswith(b"\r\n"):
            size -= 2
        elif tail.endswith(b"\n"):
            size -= 1
        content = chunk.rstrip(b"\r\n")
        if content.strip():
            yield number, content, size, tail.endswith(b"\n")


def replay_files(
    paths: Iterable[Path],
    writer: BatchWriter,
    *,
    max_payload_bytes: int = MAX_EVENT_BYTES,
    keep_bytes: int = 4096,
    batch_size: int = 1000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReplayReport:
    """Validate and store every event line of ``paths``; rejected lines become dead letters.

    Raises :class:`ReplayError` for unreadable input and :class:`StoreError` when the store
    fails; what was stored before that stays stored, and running the replay again is safe.
    """
    files = expand(paths)
    report = ReplayReport(files=len(files))
    for path in files:
        batch = _Pending(writer, report, max_payload_bytes, keep_bytes)
        with _open(path) as fh:
            try:
                for number, content, size, terminated in read_lines(fh, max_payload_bytes):
                    report.lines += 1
                    if not terminated:
                        # The folder format ends every line with a newline; a last line without
                        # one is a write in progress or cut short by a crash, not an event.
                        log.warning("%s:%d: skipping an unterminated last line", path, number)
                        report.unterminated += 1
                        continue
                    message = Inbound(
                        topic=None,
                        payload=content,
                        received_at=clock(),
                        source=f"replay:{path.name}",
                        where=f"replay:{path.name}:{number}",
                    )
                    if size > max_payload_bytes:
                        batch.too_large(message, size)
                    else:
                        batch.messages.append(message)
                    if batch.size >= batch_size:
                        batch.flush()
            except (OSError, EOFError, zlib.error) as exc:
                raise ReplayError(f"{path}: cannot read ({exc})") from None
        batch.flush()
        log.info("replayed %s", path)
    return report


class _Pending:
    def __init__(
        self, writer: BatchWriter, report: ReplayReport, max_payload_bytes: int, keep_bytes: int
    ) -> None:
        self.writer = writer
        self.report = report
        self.max_payload_bytes = max_payload_bytes
        self.keep_bytes = keep_bytes
        self.messages: list[Inbound] = []
        self.letters: list[DeadLetter] = []

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.letters)

    def too_large(self, message: Inbound, size: int) -> None:
        rejected = Rejected(
            Reason.TOO_LARGE,
            "payload",
            f"{size} bytes exceeds the limit of {self.max_payload_bytes}",
        )
        letter = dead_letter(message, rejected, self.keep_bytes)
        self.letters.append(replace(letter, payload_size=size))
        self.report.rejected[Reason.TOO_LARGE.value] += 1

    def flush(self) -> None:
        if not self.size:
            return
        classified = classify(
            self.messages,
            prefix="",
            max_payload_bytes=self.max_payload_bytes,
            keep_bytes=self.keep_bytes,
        )
        batch = replace(
            classified.batch, dead_letters=[*classified.batch.dead_letters, *self.letters]
        )
        try:
            result = self.writer.write(batch)
        except sa_exc.SQLAlchemyError as exc:
            raise StoreError(f"store failed during replay: {str(exc).splitlines()[0]}") from None
        self.report.stored += result.events_inserted
        self.report.duplicates += result.events_duplicate
        self.report.rejected.update(classified.rejected)
        if result.events_conflict:
            self.report.rejected[CONFLICT] += result.events_conflict
        self.messages.clear()
        self.letters.clear()

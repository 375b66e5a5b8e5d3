"""Where the pipeline's output goes: the :class:`EventSink` protocol.

The vision pipeline knows nothing about files, outboxes, brokers or stores; it hands each finished
person to a sink. Implementations: a JSON-lines folder (recorded clips), the durable outbox (live
agents), an in-process aggregator (the embedded demo), a list (tests).
"""

from typing import Protocol

from footfall.contract import PersonEvent


class EventSink(Protocol):
    def emit(self, event: PersonEvent, crop_jpeg: bytes | None) -> None:
        """Take one finished person. ``crop_jpeg`` is set exactly when ``event.crop`` is not None,
        and its sha256 and size are those in ``event.crop``. Must not return before the event is
        as safe as the sink promises (e.g. fsynced for the outbox)."""
        ...

    def close(self) -> None:
        """Flush and release resources; no emit after this."""
        ...


class ListSink:
    """Keeps everything in memory; for tests and small tools."""

    def __init__(self) -> None:
        self.items: list[tuple[PersonEvent, bytes | None]] = []
        self.closed = False

    def emit(self, event: PersonEvent, crop_jpeg: bytes | None) -> None:
        self.items.append((event, crop_jpeg))

    def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[PersonEvent]:
        return [event for event, _ in self.items]

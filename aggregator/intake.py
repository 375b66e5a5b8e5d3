"""From raw messages to a store batch: validation outcomes become events, statuses or dead
letters. Shared by live ingest and replay, so both apply exactly the same rules."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.store import DeadLetter, StatusRecord, StoredEvent, WriteBatch
from aggregator.validate import (
    Accepted,
    AcceptedStatus,
    Outcome,
    Rejected,
    validate,
    validate_event,
)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message to take in.

    ``topic`` is None for a replayed line (there is no topic to check the identity against).
    ``source`` is stored with the event (``mqtt:<client id>``, ``replay:<file>``); ``where`` pins
    a dead letter down further (e.g. ``replay:<file>:<line>``) and defaults to ``source``.
    """

    topic: str | None
    payload: bytes
    received_at: datetime
    source: str
    where: str | None = None


@dataclass
class Classified:
    batch: WriteBatch
    rejected: Counter[str] = field(default_factory=Counter)


def dead_letter(message: Inbound, rejected: Rejected, keep_bytes: int) -> DeadLetter:
    address = rejected.address
    return DeadLetter(
        received_at=message.received_at,
        source=message.where or message.source,
        topic=message.topic,
        site=address.site if address else None,
        spot=address.spot if address else None,
        agent=address.agent if address else None,
        reason=rejected.reason.value,
        field=rejected.field,
        detail=rejected.detail,
        payload=message.payload[:keep_bytes],
        payload_size=len(message.payload),
    )


def classify(
    messages: Sequence[Inbound], *, prefix: str, max_payload_bytes: int, keep_bytes: int
) -> Classified:
    """Validate every message and sort it into the parts of one store batch."""
    events: list[StoredEvent] = []
    letters: list[DeadLetter] = []
    statuses: list[StatusRecord] = []
    rejected: Counter[str] = Counter()
    for message in messages:
        outcome: Outcome
        if message.topic is None:
            outcome = validate_event(message.payload, max_bytes=max_payload_bytes)
        else:
            outcome = validate(prefix, message.topic, message.payload, max_bytes=max_payload_bytes)
        if isinstance(outcome, Accepted):
            events.append(StoredEvent(outcome.event, message.received_at, message.source))
        elif isinstance(outcome, AcceptedStatus):
            statuses.append(StatusRecord(outcome.channel, outcome.status, message.received_at))
        else:
            letters.append(dead_letter(message, outcome, keep_bytes))
            rejected[outcome.reason.value] += 1
    return Classified(WriteBatch(events, letters, statuses), rejected)

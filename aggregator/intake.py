"""From raw messages to a store batch: validation outcomes become events, statuses or dead
letters. Shared by live ingest and replay, so both apply exactly the same rules."""

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.store import DeadLetter, StatusRecord, StoredEvent, WriteBatch
from aggregator.validate import (
    Accepted,
    AcceptedConfigResult,
    AcceptedStatus,
    LiveWindow,
    Outcome,
    Rejected,
    validate,
    validate_event,
)
from footfall.contract import ConfigOutcome

log = logging.getLogger(__name__)


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
    config_results: Counter[str] = field(default_factory=Counter)  # by outcome


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
    messages: Sequence[Inbound],
    *,
    prefix: str,
    max_payload_bytes: int,
    keep_bytes: int,
    window: LiveWindow | None = None,
) -> Classified:
    """Validate every message and sort it into the parts of one store batch. With ``window``
    (live ingest), events are also checked against the time each message was received."""
    events: list[StoredEvent] = []
    letters: list[DeadLetter] = []
    statuses: list[StatusRecord] = []
    rejected: Counter[str] = Counter()
    config_results: Counter[str] = Counter()
    for message in messages:
        outcome: Outcome
        if message.topic is None:
            outcome = validate_event(
                message.payload,
                max_bytes=max_payload_bytes,
                window=window,
                now=message.received_at,
            )
        else:
            outcome = validate(
                prefix,
                message.topic,
                message.payload,
                max_bytes=max_payload_bytes,
                window=window,
                now=message.received_at,
            )
        if isinstance(outcome, Accepted):
            events.append(
                StoredEvent(
                    outcome.event,
                    message.received_at,
                    message.source,
                    payload=message.payload,
                    topic=message.topic,
                    where=message.where,
                )
            )
        elif isinstance(outcome, AcceptedStatus):
            statuses.append(StatusRecord(outcome.channel, outcome.status, message.received_at))
        elif isinstance(outcome, AcceptedConfigResult):
            _log_config_result(outcome)
            config_results[outcome.result.outcome.value] += 1
        else:
            letters.append(dead_letter(message, outcome, keep_bytes))
            rejected[outcome.reason.value] += 1
    return Classified(WriteBatch(events, letters, statuses), rejected, config_results)


def _log_config_result(outcome: AcceptedConfigResult) -> None:
    # The agent's heartbeat carries the version in effect (stored with the fleet status); the
    # answer itself is an operator's event, so it goes to the log.
    r = outcome.result
    who = f"{r.site}/{r.spot}/{r.agent}"
    if r.outcome is ConfigOutcome.APPLIED:
        log.info("%s applied config %s (in effect: %s)", who, r.config_version, r.active_version)
    else:
        log.warning(
            "%s rejected config %s: %s (still running %s)",
            who,
            r.config_version,
            r.reason,
            r.active_version,
        )

"""Telling a copy of a stored event from another event under the same id.

A batch whose insert skipped known ids pays for this lookup; a batch of new events does not
(:meth:`aggregator.store.EventStore.write`). Equal content hashes mean a copy. Otherwise the
stored event is read back and compared field by field, so a copy that differs only in its bytes
(another serializer) is still a copy, and events stored before the hash column existed (no hash)
are checked too. Another event under a known id becomes a ``conflict`` dead letter; the copy
stored first stays.
"""

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from aggregator.store import tables
from aggregator.store.rows import DeadLetter, EventRow, StoredEvent
from footfall.contract import PersonEvent

log = logging.getLogger(__name__)

CONFLICT = "conflict"
"""Dead-letter reason of an event whose id is stored already with other content."""
_ID_CHUNK = 500  # ids per IN (...) list: far below SQLite's limit on bound parameters


def conflicts(conn: sa.Connection, items: Sequence[StoredEvent]) -> list[DeadLetter]:
    """Dead letters for the events of a just-inserted batch whose id is stored with other
    content. The stored copy (the first to arrive, or the first of this batch) stays."""
    t = tables.events
    ids = list(dict.fromkeys(i.event.event_id for i in items))
    hashes: dict[uuid.UUID, bytes | None] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        select = sa.select(t.c.event_id, t.c.content_sha256).where(t.c.event_id.in_(chunk))
        hashes.update((row.event_id, row.content_sha256) for row in conn.execute(select))
    suspects = [i for i in items if hashes.get(i.event.event_id) != i.content_sha256]
    if not suspects:
        return []
    stored: dict[uuid.UUID, EventRow] = {}
    suspect_ids = list(dict.fromkeys(i.event.event_id for i in suspects))
    for start in range(0, len(suspect_ids), _ID_CHUNK):
        chunk = suspect_ids[start : start + _ID_CHUNK]
        for row in conn.execute(sa.select(t).where(t.c.event_id.in_(chunk))).mappings():
            found = EventRow.from_mapping(row)
            stored[found.event_id] = found
    letters = []
    for item in suspects:
        first = stored[item.event.event_id]
        differences = _differences(first.event, item.event)
        if differences:
            letters.append(_conflict_letter(item, first, differences))
    return letters


def _differences(stored: PersonEvent, other: PersonEvent) -> list[str]:
    """Dotted paths of the fields in which two events differ (nested records field by field)."""

    def walk(a: Any, b: Any, path: str) -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [d for key in a | b for d in walk(a.get(key), b.get(key), f"{path}{key}.")]
        return [] if a == b else [path.rstrip(".")]

    return walk(stored.model_dump(mode="json"), other.model_dump(mode="json"), "")


def _conflict_letter(item: StoredEvent, first: EventRow, differences: list[str]) -> DeadLetter:
    event = item.event
    shown = ", ".join(differences[:8]) + (", ..." if len(differences) > 8 else "")
    detail = (
        f"event {event.event_id} is stored already with other content ({shown}); the copy "
        f"stored first stays (received {first.received_at:%Y-%m-%d %H:%M:%S} UTC from "
        f"{first.source})"
    )
    log.warning(
        "conflicting duplicate from %s/%s/%s: %s", event.site, event.spot, event.agent, detail
    )
    payload = item.wire()
    return DeadLetter(
        received_at=item.received_at,
        source=item.where or item.source,
        topic=item.topic,
        site=event.site,
        spot=event.spot,
        agent=event.agent,
        reason=CONFLICT,
        field="event_id",
        detail=detail,
        payload=payload,
        payload_size=len(payload),
    )

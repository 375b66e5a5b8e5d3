"""``Receipt``: an aggregator telling an agent which of its events are now in the store.

The agent's outbox keeps an event until a receipt names it, not merely until the broker's PUBACK:
a broker acknowledges a publish when it has taken it, and what it holds in memory (queued for an
aggregator that is away, or in flight to one that is killed) is gone if the broker crashes, or if
the session it was queued for ends. A receipt is published only after the batch holding the
event was committed, so it means the event is durable (stored, recognised as a duplicate, or kept
as a dead letter) and the agent may forget it.

Published QoS 1 on the agent's own ``receipts`` topic, which only aggregators may write.
"""

from uuid import UUID

from pydantic import Field

from footfall.contract.types import Record, SchemaVersion1, ShortText, UtcTimestamp
from footfall.ids import SafeId

MAX_RECEIPT_IDS = 10_000
"""Event ids in one receipt; above the largest ingest batch, so one batch is one receipt."""
MAX_RECEIPT_BYTES = 1024 + 40 * MAX_RECEIPT_IDS
"""Largest encoded receipt accepted: a quoted UUID and its comma are 39 bytes."""


class Receipt(Record):
    """Event ids of one agent committed by one aggregator batch."""

    schema_version: SchemaVersion1 = Field(description="Version of this contract")
    site: SafeId
    spot: SafeId
    agent: SafeId
    event_ids: list[UUID] = Field(
        min_length=1, max_length=MAX_RECEIPT_IDS, description="Events now durable in the store"
    )
    aggregator: ShortText = Field(description="Client id of the aggregator that stored them")
    sent_at: UtcTimestamp = Field(description="When the aggregator made this receipt")

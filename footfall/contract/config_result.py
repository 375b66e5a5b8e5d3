"""``ConfigResult``: an agent's answer to a remote configuration, on its ``config-result`` topic
(retained, so the latest answer of every agent can be read at any time)."""

from enum import StrEnum

from pydantic import Field

from footfall.contract.types import Note, Record, SchemaVersion1, ShortText, UtcTimestamp
from footfall.ids import SafeId


class ConfigOutcome(StrEnum):
    APPLIED = "applied"  # validated, saved on the device and handed to the running pipeline
    REJECTED = "rejected"  # not applied; the previous configuration stays in effect


class ConfigResult(Record):
    """Published by the agent for every configuration it receives."""

    schema_version: SchemaVersion1 = Field(description="Version of this contract")
    site: SafeId
    spot: SafeId
    agent: SafeId
    config_version: ShortText | None = Field(
        description="Version of the configuration answered; null if it could not even be read"
    )
    outcome: ConfigOutcome = Field(description="applied or rejected")
    reason: Note | None = Field(
        default=None, description="Why it was rejected (every problem, with its key path)"
    )
    active_version: ShortText = Field(
        description="Version of the configuration in effect after this answer"
    )
    sent_at: UtcTimestamp = Field(description="When the agent made this answer")

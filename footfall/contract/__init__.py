"""The wire contract between edge agents and the aggregator, version 1.

Both sides import it from here; ``schemas/`` holds the JSON Schema exported from these models.
"""

from footfall.contract.config_result import ConfigOutcome, ConfigResult
from footfall.contract.decode import ContractError, FieldError, decode
from footfall.contract.events import (
    MAX_EVENT_BYTES,
    SCHEMA_VERSION,
    AgeEstimate,
    CropRef,
    FaceInfo,
    GenderEstimate,
    ModelRef,
    PersonEvent,
)
from footfall.contract.receipt import MAX_RECEIPT_BYTES, MAX_RECEIPT_IDS, Receipt
from footfall.contract.status import AgentStats, AgentStatus
from footfall.contract.topics import DEFAULT_PREFIX, AgentAddress, Channel, parse_topic
from footfall.contract.types import format_utc_ms
from footfall.contract.vocab import (
    AGE_GROUPS,
    AgeGroup,
    AgentState,
    Direction,
    Gender,
    ModelRole,
    Side,
    SourceState,
    age_group_for_years,
)

__all__ = [
    "AGE_GROUPS",
    "DEFAULT_PREFIX",
    "MAX_EVENT_BYTES",
    "MAX_RECEIPT_BYTES",
    "MAX_RECEIPT_IDS",
    "SCHEMA_VERSION",
    "AgeEstimate",
    "AgeGroup",
    "AgentAddress",
    "AgentState",
    "AgentStats",
    "AgentStatus",
    "Channel",
    "ConfigOutcome",
    "ConfigResult",
    "ContractError",
    "CropRef",
    "Direction",
    "FaceInfo",
    "FieldError",
    "Gender",
    "GenderEstimate",
    "ModelRef",
    "ModelRole",
    "PersonEvent",
    "Receipt",
    "Side",
    "SourceState",
    "age_group_for_years",
    "decode",
    "format_utc_ms",
    "parse_topic",
]

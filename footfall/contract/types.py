"""Field types shared by the contract's records."""

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)


def _to_utc_ms(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (UTC, e.g. '2026-05-01T12:00:00.000Z')")
    value = value.astimezone(UTC)
    # The wire format has millisecond precision; truncating here makes a decoded event equal to
    # the one that was encoded.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_utc_ms(value: datetime) -> str:
    """ISO 8601, UTC, milliseconds, ``Z`` suffix: ``2026-05-01T12:00:00.123Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


UtcTimestamp = Annotated[
    datetime,
    AfterValidator(_to_utc_ms),
    PlainSerializer(format_utc_ms, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "UTC, ISO 8601 with milliseconds, e.g. 2026-05-01T12:00:00.123Z",
        }
    ),
]


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F (a test checks this against
# unicodedata); one regex search is far cheaper than a Python loop per character, and this runs
# for several fields of every event the aggregator takes in.
_CONTROL_CHAR = re.compile("[\x00-\x1f\x7f-\x9f]")


def _no_control_chars(value: str) -> str:
    found = _CONTROL_CHAR.search(value)
    if found is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")
    return value


def _exactly_an_integer(value: object) -> object:
    # true == 1 == 1.0 in Python, so Literal[1] alone accepts "schema_version": true or 1.0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be the integer 1, got {type(value).__name__}")
    return value


SchemaVersion1 = Annotated[Literal[1], BeforeValidator(_exactly_an_integer)]
"""Version 1 of a record, as the JSON number 1 and nothing that merely equals it."""

ShortText = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_control_chars)]
Note = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_no_control_chars)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Record(BaseModel):
    """Base of every contract record: unknown fields are refused and records are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

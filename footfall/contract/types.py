"""Field types shared by the contract's records."""

import re
from datetime import UTC, datetime, timedelta
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

EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
"""No record of the contract is older than this (an agent whose clock was never set says 1970)."""
END_OF_TIMESTAMPS = datetime(2100, 1, 1, tzinfo=UTC)
"""Every timestamp of the contract is before this. The window keeps every later step (a day
after the last event, a report period in any time zone, the workbook's Excel dates) far from the
ends of what ``datetime`` can hold: an event dated 9999-12-31 used to be stored and then crash
the report of its day."""
INT64_MAX = 2**63 - 1
"""Largest integer the store holds (a BIGINT column on PostgreSQL, a SQLite integer)."""


def timestamp_window_text() -> str:
    return (
        f"{EARLIEST_TIMESTAMP:%Y-%m-%d} to {END_OF_TIMESTAMPS - timedelta(days=1):%Y-%m-%d} (UTC)"
    )


def _to_utc_ms(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (UTC, e.g. '2026-05-01T12:00:00.000Z')")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is after the last datetime in UTC
        value = END_OF_TIMESTAMPS
    if not EARLIEST_TIMESTAMP <= value < END_OF_TIMESTAMPS:
        raise ValueError(f"must be within {timestamp_window_text()}")
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
            # The window, in the keywords of ajv-formats (JSON Schema has none of its own for
            # date-time bounds), so other implementations of the contract can check it too.
            "formatMinimum": "2000-01-01T00:00:00.000Z",
            "formatExclusiveMaximum": "2100-01-01T00:00:00.000Z",
        }
    ),
]


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F (a test checks this against
# unicodedata); one regex search is far cheaper than a Python loop per character, and this runs
# for several fields of every event the aggregator takes in.
_CONTROL_CHARS = "\x00-\x1f\x7f-\x9f"
# The invisible marks that reorder how text is displayed (embeddings, overrides, isolates and the
# directional marks): with them a model name or a note can show something other than what it
# says (the "Trojan Source" trick), in a terminal, a log or a workbook cell. They are refused
# rather than stripped or normalised, so what is stored is always byte for byte what the agent
# sent; no legitimate name, version or note of this contract needs them.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_FORBIDDEN_CHAR = re.compile(f"[{_CONTROL_CHARS}{BIDI_CONTROLS}]")
_BIDI_CHAR = re.compile(f"[{BIDI_CONTROLS}]")


def _no_control_chars(value: str) -> str:
    found = _FORBIDDEN_CHAR.search(value)
    if found is not None:
        kind = "bidirectional control" if _BIDI_CHAR.match(found.group()) else "control"
        raise ValueError(f"{kind} character U+{ord(found.group()):04X} is not allowed")
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
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative integer the store can hold."""
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Record(BaseModel):
    """Base of every contract record: unknown fields are refused and records are immutable.

    Numbers must be finite: pydantic's JSON reader takes ``NaN`` and ``Infinity``, which JSON
    itself does not have and which no counter or duration can be."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def to_json(self) -> bytes:
        """The wire form: compact UTF-8 JSON."""
        return self.model_dump_json().encode("utf-8")

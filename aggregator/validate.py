"""Deciding what an incoming message is: a valid event, a valid status, or a rejection.

Pure: ``(topic, payload bytes) -> Accepted | AcceptedStatus | Rejected``; never raises for any
input. On top of the contract's own checks it enforces that the site, spot and agent inside the
payload are those of the topic it was published on, so no agent can speak for another (the broker's
ACL ties each agent's credentials to its own topics). Text that merely looks like a spreadsheet
formula (``=cmd|...``) is valid text; the workbook neutralizes it when it writes cells.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from footfall.contract import (
    MAX_EVENT_BYTES,
    AgentAddress,
    AgentStatus,
    Channel,
    ConfigResult,
    ContractError,
    PersonEvent,
    decode,
    format_utc_ms,
    parse_topic,
)


class Reason(StrEnum):
    """Why a message went to the dead letters."""

    TOO_LARGE = "too_large"  # over the payload size limit; not parsed at all
    BAD_TOPIC = "bad_topic"  # not <prefix>/<site>/<spot>/<agent>/<channel>
    UNEXPECTED_CHANNEL = "unexpected_channel"  # a valid topic the aggregator does not consume
    INVALID = "invalid"  # not a valid record of the contract
    IDENTITY_MISMATCH = "identity_mismatch"  # payload says it is from another agent than the topic
    OUT_OF_WINDOW = "out_of_window"  # live event too old or ahead of the aggregator's clock


@dataclass(frozen=True, slots=True)
class Accepted:
    event: PersonEvent


@dataclass(frozen=True, slots=True)
class AcceptedStatus:
    channel: Channel
    status: AgentStatus


@dataclass(frozen=True, slots=True)
class Rejected:
    """``field`` is the dotted path of the first offending field (``payload`` for the bytes as a
    whole, ``topic`` for the topic); ``detail`` lists every problem."""

    reason: Reason
    field: str | None
    detail: str
    address: AgentAddress | None = None  # from the topic, when the topic itself was valid


@dataclass(frozen=True, slots=True)
class AcceptedConfigResult:
    """An agent's answer to a remote configuration; logged and counted, not stored."""

    result: ConfigResult


Outcome = Accepted | AcceptedStatus | AcceptedConfigResult | Rejected


@dataclass(frozen=True, slots=True)
class LiveWindow:
    """How far a live event's times may be from the aggregator's clock when it arrives.

    The contract already bounds every timestamp absolutely (2000-2099); this is the tighter,
    configurable check for events that come in live, where a time far from now means a wrong
    clock on the device: ``max_ahead`` catches a clock running ahead (its events would land in
    days nobody has reported yet), ``max_age`` one set far back. The age limit must exceed the
    longest outage the fleet is meant to ride out, since an agent keeps its events in its outbox
    until the broker takes them. Replay and the embedded survey load recorded clips of any date
    and use no window.
    """

    max_age: timedelta
    max_ahead: timedelta

    def check(self, event: PersonEvent, now: datetime) -> tuple[str, str] | None:
        """``(field, detail)`` of the first time outside the window, or None."""
        ahead = event.last_seen - now
        if ahead > self.max_ahead:
            return "last_seen", (
                f"{format_utc_ms(event.last_seen)} is {_span(ahead)} ahead of the aggregator's "
                f"clock (limit ingest.event_max_ahead_seconds = "
                f"{self.max_ahead.total_seconds():g}): check the agent's clock"
            )
        age = now - event.first_seen
        if age > self.max_age:
            return "first_seen", (
                f"{format_utc_ms(event.first_seen)} is {_span(age)} before the aggregator's "
                f"clock (limit ingest.event_max_age_days = {self.max_age / timedelta(days=1):g}): "
                "check the agent's clock, or load old recordings with `footfall-aggregator replay`"
            )
        return None


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


_CONSUMED = (Channel.EVENTS, Channel.STATUS, Channel.HEARTBEAT)


def _too_large(size: int, max_bytes: int) -> Rejected | None:
    if size > max_bytes:
        return Rejected(
            Reason.TOO_LARGE, "payload", f"{size} bytes exceeds the limit of {max_bytes}"
        )
    return None


def _identity(
    claimed: PersonEvent | AgentStatus | ConfigResult, address: AgentAddress | None
) -> Rejected | None:
    if address is None or (
        claimed.site == address.site
        and claimed.spot == address.spot
        and claimed.agent == address.agent
    ):
        return None
    wrong = [
        name
        for name in ("site", "spot", "agent")
        if getattr(claimed, name) != getattr(address, name)
    ]
    detail = ", ".join(
        f"{name} {getattr(claimed, name)!r} in the payload but {getattr(address, name)!r} in the "
        "topic"
        for name in wrong
    )
    return Rejected(Reason.IDENTITY_MISMATCH, wrong[0], detail, address)


Claimed = TypeVar("Claimed", PersonEvent, AgentStatus, ConfigResult)
"""A record that says which agent it is from."""


def validate_record(
    kind: type[Claimed],
    payload: bytes,
    *,
    address: AgentAddress | None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Claimed | Rejected:
    """Check one payload that should be a ``kind`` record: its size, the contract's own checks
    and, with ``address`` (from its topic), that it is from the agent of that topic."""
    if (too_large := _too_large(len(payload), max_bytes)) is not None:
        return replace(too_large, address=address)
    try:
        record = decode(kind, payload, max_bytes=max_bytes)
    except ContractError as exc:
        field = exc.errors[0].field if exc.errors else None
        return Rejected(Reason.INVALID, field, str(exc), address)
    return _identity(record, address) or record


def validate_event(
    payload: bytes,
    *,
    address: AgentAddress | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
    window: LiveWindow | None = None,
    now: datetime | None = None,
) -> Accepted | Rejected:
    """Check one PersonEvent payload (see :func:`validate_record`), and with ``window`` its
    times against ``now`` (the aggregator's clock when it arrived)."""
    event = validate_record(PersonEvent, payload, address=address, max_bytes=max_bytes)
    if isinstance(event, Rejected):
        return event
    if window is not None and now is not None:
        outside = window.check(event, now)
        if outside is not None:
            return Rejected(Reason.OUT_OF_WINDOW, *outside, address)
    return Accepted(event)


def validate(
    prefix: str,
    topic: str,
    payload: bytes,
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    window: LiveWindow | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Classify one MQTT message published on ``topic`` under ``prefix`` (events checked
    against ``window`` at ``now`` when both are given)."""
    try:
        address, channel = parse_topic(prefix, topic)
    except ValueError as exc:  # ContractError, or a prefix that is not valid at all
        too_large = _too_large(len(payload), max_bytes)
        return too_large or Rejected(Reason.BAD_TOPIC, "topic", str(exc))
    if channel is Channel.EVENTS:
        return validate_event(payload, address=address, max_bytes=max_bytes, window=window, now=now)
    if channel in _CONSUMED:
        status = validate_record(AgentStatus, payload, address=address, max_bytes=max_bytes)
        return status if isinstance(status, Rejected) else AcceptedStatus(channel, status)
    if channel is Channel.CONFIG_RESULT:
        result = validate_record(ConfigResult, payload, address=address, max_bytes=max_bytes)
        return result if isinstance(result, Rejected) else AcceptedConfigResult(result)
    return Rejected(
        Reason.UNEXPECTED_CHANNEL, "topic", f"channel {channel.value!r} is not consumed", address
    )

"""MQTT topic layout: ``<prefix>/<site>/<spot>/<agent>/<channel>``.

Ids are :data:`footfall.ids.SafeId`, so a topic level can never contain a wildcard or separator.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from footfall.contract.decode import ContractError, FieldError
from footfall.ids import check_id

DEFAULT_PREFIX = "footfall/v1"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,3}")


class Channel(StrEnum):
    EVENTS = "events"  # PersonEvent, QoS 1
    STATUS = "status"  # AgentStatus, retained; the will message says offline
    HEARTBEAT = "heartbeat"  # AgentStatus with stats, every N seconds
    CONFIG = "config"  # agent configuration, retained, written by the operator only
    CONFIG_RESULT = "config-result"  # the agent's answer to a config: applied or rejected, why
    RECEIPTS = "receipts"  # Receipt from an aggregator: these events are committed, QoS 1


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"{prefix!r} is not a valid topic prefix: use 1-4 levels of letters, digits, '-' or '_' "
            "separated by '/'"
        )
    return prefix


@dataclass(frozen=True)
class AgentAddress:
    """Who an agent is: the three ids that place it in the fleet."""

    site: str
    spot: str
    agent: str

    def __post_init__(self) -> None:
        for value in (self.site, self.spot, self.agent):
            check_id(value)

    def topic(self, prefix: str, channel: Channel) -> str:
        return f"{check_prefix(prefix)}/{self.site}/{self.spot}/{self.agent}/{channel.value}"


def parse_topic(prefix: str, topic: str) -> tuple[AgentAddress, Channel]:
    """Split a concrete topic into the agent it belongs to and its channel."""
    head = check_prefix(prefix) + "/"
    if not topic.startswith(head):
        raise ContractError([FieldError("topic", f"{topic!r} is not under prefix {prefix!r}")])
    parts = topic[len(head) :].split("/")
    if len(parts) != 4:
        raise ContractError(
            [FieldError("topic", f"{topic!r} is not <prefix>/<site>/<spot>/<agent>/<channel>")]
        )
    try:
        channel = Channel(parts[3])
        return AgentAddress(parts[0], parts[1], parts[2]), channel
    except ValueError as exc:
        raise ContractError([FieldError("topic", str(exc))]) from None


def subscription(prefix: str, channel: Channel, *, site: str = "+") -> str:
    """Topic filter for one channel of every agent (optionally of one site)."""
    if site != "+":
        check_id(site)
    return f"{check_prefix(prefix)}/{site}/+/+/{channel.value}"


def shared(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription: the broker gives each message to one member of ``group``."""
    check_id(group)
    return f"$share/{group}/{topic_filter}"

"""The broker accounts a test Mosquitto is started with: who, with which password and role,
and the ACL lines each gets."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from footfall.broker_auth import (
    AccountAcl,
    Role,
    acl_lines,
)
from infra.devservices.common import (
    DEFAULT_TOPIC_PREFIX,
)

_MQTT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
TOPIC_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,3}")


@dataclass(frozen=True)
class BrokerUser:
    """A broker account and what the ACL lets it do.

    - ``aggregator``: reads ``<prefix>/#``.
    - ``agent``: writes ``<prefix>/<site>/<spot>/<agent>/{events,status,heartbeat,config-result}``
      and ``receipts``, reads and writes its own ``config`` (to restore it after a rejection),
      nothing else.
    - ``operator``: writes and reads every agent's ``config``, reads every ``config-result``.
    - ``admin``: reads and writes every topic.

    The ACL lines come from :mod:`footfall.broker_auth`, the renderer the fleet registry uses.

    ``topic_prefix`` None means the broker's prefix. ``extra_acl`` adds raw ACL lines such as
    ``"topic write footfall/v1/+/+/+/config"``.
    """

    name: str
    password: str
    role: Role
    site: str | None = None
    spot: str | None = None
    agent: str | None = None
    topic_prefix: str | None = None
    extra_acl: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _MQTT_NAME_RE.fullmatch(self.name):
            raise ValueError(f"broker user name {self.name!r}: use letters, digits, '.', '_', '-'")
        if not self.password or any(c in self.password for c in ":\n\r"):
            raise ValueError(f"password of {self.name!r} must be non-empty without ':' or newlines")
        object.__setattr__(self, "role", Role(self.role))
        if self.role is Role.AGENT:
            for label, value in (("site", self.site), ("spot", self.spot), ("agent", self.agent)):
                if value is None or not _ID_RE.fullmatch(value):
                    raise ValueError(f"agent user {self.name!r} needs a valid {label} id")
        if self.topic_prefix is not None and not TOPIC_PREFIX_RE.fullmatch(self.topic_prefix):
            raise ValueError(f"topic prefix {self.topic_prefix!r} is not 1-4 plain levels")

    def agent_topic(self, channel: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
        """``<prefix>/<site>/<spot>/<agent>/<channel>`` of this agent."""
        if self.role is not Role.AGENT:
            raise ValueError(f"{self.name!r} is not an agent")
        return f"{self.topic_prefix or prefix}/{self.site}/{self.spot}/{self.agent}/{channel}"

    def acl_lines(self, default_prefix: str) -> list[str]:
        account = AccountAcl(
            self.name,
            self.role,
            self.topic_prefix or default_prefix,
            self.site,
            self.spot,
            self.agent,
        )
        return acl_lines(account, self.extra_acl)


def _password() -> str:
    return secrets.token_hex(12)


def default_broker_users() -> list[BrokerUser]:
    """``aggregator``, ``admin`` and agents ``site-a/spot-1/agent-1`` and ``site-a/spot-2/agent-2``,
    each with a fresh random password."""
    return [
        BrokerUser("aggregator", _password(), Role.AGGREGATOR),
        BrokerUser("admin", _password(), Role.ADMIN),
        BrokerUser("agent-1", _password(), Role.AGENT, "site-a", "spot-1", "agent-1"),
        BrokerUser("agent-2", _password(), Role.AGENT, "site-a", "spot-2", "agent-2"),
    ]


# MQTT 3.1.1 CONNACK return codes (the probe below speaks 3.1.1: it needs no client library).

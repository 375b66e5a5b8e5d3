"""The operator's side of remote configuration: publish a config retained on an agent's
``config`` topic and wait for the agent's answer on ``config-result``.

The message is retained, so an agent that is offline gets it when it next connects; waiting for
the answer is a convenience, not part of the delivery.
"""

import secrets
import time
from dataclasses import dataclass

from footfall.connections import BrokerSettings
from footfall.contract import Channel, ConfigResult, ContractError, decode
from footfall.contract.topics import AgentAddress
from footfall.mqtt_link import LinkError, PahoLink, Received


class PushError(Exception):
    """The config could not be published; the message says why."""


@dataclass(frozen=True)
class PushOutcome:
    topic: str
    answer: ConfigResult | None  # None: no answer within the wait


def push_config(
    broker: BrokerSettings,
    address: AgentAddress,
    payload: bytes,
    *,
    version: str | None,
    wait_seconds: float,
) -> PushOutcome:
    """Publish ``payload`` (JSON of a RemoteConfig, or empty to clear) retained with QoS 1, then
    wait up to ``wait_seconds`` for the agent's answer to ``version`` (any answer when
    clearing). Raises :class:`PushError` when the broker refuses the connection or the publish."""
    topic = address.topic(broker.topic_prefix, Channel.CONFIG)
    result_topic = address.topic(broker.topic_prefix, Channel.CONFIG_RESULT)
    link = PahoLink(broker, f"operator-{secrets.token_hex(4)}")
    try:
        link.connect(None)
        # Subscribed before publishing, so the answer cannot slip by; the retained answer to an
        # earlier config arrives at once and is told apart by its retain flag.
        link.subscribe(result_topic, 1)
        mid = link.publish(topic, payload, qos=1, retain=True)
        deadline = time.monotonic() + 10.0
        ack = None
        pending: list[Received] = []
        while ack is None:
            if time.monotonic() > deadline or not link.connected:
                raise PushError(f"no acknowledgement from the broker for {topic}")
            for candidate in link.poll(0.1):
                if candidate.mid == mid:
                    ack = candidate
            pending += link.received()
        if ack.failed:
            raise PushError(
                f"the broker refused the publish to {topic}: {ack.reason} (reason code "
                f"{ack.reason_code}); the account needs the operator role"
            )
        answer = _wait_answer(link, pending, version, wait_seconds)
        return PushOutcome(topic, answer)
    except LinkError as exc:
        raise PushError(str(exc)) from None
    finally:
        link.close()


def _wait_answer(
    link: PahoLink, pending: list[Received], version: str | None, wait_seconds: float
) -> ConfigResult | None:
    deadline = time.monotonic() + wait_seconds
    while True:
        for message in pending:
            if message.retain:
                continue  # an answer to an earlier config
            try:
                answer = decode(ConfigResult, message.payload)
            except ContractError:
                continue
            if version is None or answer.config_version == version:
                return answer
        left = deadline - time.monotonic()
        if left <= 0 or not link.connected:
            return None
        link.poll(min(0.1, left))
        pending = link.received()

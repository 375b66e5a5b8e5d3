"""Remote configuration: what an operator may change on a running agent, and how the agent takes
it.

The operator publishes a :class:`~footfall.remote_config.RemoteConfig` (JSON) retained on the
agent's ``config`` topic (``footfall-aggregator fleet push-config``). The agent receives it on
every connection, checks it, and answers on ``config-result`` with a :class:`~footfall.contract.ConfigResult`: applied, or
rejected with every problem and its key path. What can change remotely is deliberately narrow:
the counting line and direction rules, tracker and classifier thresholds, the crop policy, how
often the detector runs and the heartbeat interval. Identity, credentials, the broker, the
object store, the source and the model files are only ever changed in the agent's own file.

Semantics: a remote configuration is an overlay on the agent's file. Each section it contains
replaces that section (keys left out take their defaults, exactly as the operator's file was
validated); sections it leaves out keep the file's values. Every remote configuration is thus
complete in itself: pushing a new one does not inherit anything from the previous one, and an
empty retained message clears it (back to the file). The result is validated as a whole agent
configuration, so rules that span sections (tracker.low_score against the detector's threshold)
still hold.

An applied configuration is saved under the data directory and used from the next start on, so
a restart without a broker keeps it.

A rejected configuration must not stay retained on the broker: every restart would reject it
again, and a new device on the same address would never get the configuration that works. So
the answer to a rejection (:meth:`RemoteConfigManager.answer`) also says what the ``config``
topic must hold again: the configuration still in effect, exactly as it was published, or an
empty payload (clears the retained message) when the agent runs on its file alone. The agent
publishes that retained itself (its ACL lets it write its own ``config`` topic and nobody
else's); the broker then hands that message back to it, which is recognised and not applied a
second time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from edge_agent.config import AgentConfig
from footfall.broker_auth import atomic_write
from footfall.contract import SCHEMA_VERSION, ConfigOutcome, ConfigResult
from footfall.remote_config import RemoteConfig, RemoteConfigError, parse_remote_config
from footfall.settings import _format_errors

log = logging.getLogger(__name__)

REMOTE_CONFIG_FILE = "remote-config.json"
_REASON_MAX = 300

_PIPELINE_SECTIONS = ("detector", "tracker", "counting", "classifier", "crops", "delivery")


def effective_config(base: AgentConfig, remote: RemoteConfig | None) -> AgentConfig:
    """The agent's file configuration with ``remote`` laid over it, validated as a whole.
    Raises :class:`RemoteConfigError`."""
    if remote is None:
        return base
    updates: dict[str, object] = {"config_version": remote.config_version}
    for name in ("counting", "tracker", "crops"):
        value = getattr(remote, name)
        if value is not None:
            updates[name] = value
    if remote.classifier is not None:
        updates["classifier"] = base.classifier.model_copy(update=remote.classifier.model_dump())
    if remote.detector is not None:
        updates["detector"] = base.detector.model_copy(update=remote.detector.model_dump())
    if remote.delivery is not None:
        updates["delivery"] = base.delivery.model_copy(update=remote.delivery.model_dump())
    merged = base.model_copy(update=updates)
    # Cross-section rules live on AgentConfig: validate the merged sections together (identity
    # included, connections left out: they hold secrets and cannot change here anyway).
    check = {"site": base.site, "spot": base.spot, "agent": base.agent}
    for name in _PIPELINE_SECTIONS:
        check[name] = getattr(merged, name).model_dump()
    try:
        AgentConfig.model_validate(check)
    except ValidationError as exc:
        raise RemoteConfigError(_format_errors(exc, {})) from None
    return merged


def _peek_version(payload: bytes) -> str | None:
    """The config_version of a payload that failed validation elsewhere, if it has a usable one
    (so the operator can match the rejection to what they pushed)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    version = data.get("config_version") if isinstance(data, dict) else None
    if isinstance(version, str) and 0 < len(version) <= 64 and version.isprintable():
        return version
    return None


def _reason(errors: list[str]) -> str:
    text = "; ".join(" ".join(e.split()) for e in errors)
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


ConfigListener = Callable[[AgentConfig], None]


@dataclass(frozen=True)
class ConfigAnswer:
    """What the agent does about one message of its ``config`` topic."""

    result: ConfigResult | None  # published retained on config-result; None: nothing to answer
    # Published retained on the config topic: the configuration in effect as it was published
    # (b"" clears the retained message); None leaves the topic as it is.
    restore: bytes | None = None


class RemoteConfigManager:
    """The agent's side: holds the file configuration, the remote one in effect and the
    resulting active configuration; checks and applies what arrives on the config topic.

    ``listeners`` are called with the new active configuration after it was accepted and saved
    (from the MQTT sender's thread): the pipeline's apply hook, the heartbeat interval.
    """

    def __init__(
        self,
        base: AgentConfig,
        remote: RemoteConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base = base
        self.remote = remote
        self.active = effective_config(base, remote)
        # The config topic's payload that produced ``remote`` (b"": none), for restoring it.
        self.payload = remote.to_json() if remote is not None else b""
        self.path = base.data_dir / REMOTE_CONFIG_FILE
        self.listeners: list[ConfigListener] = []
        # Checks that need what only the running agent knows (the frame size): each raises
        # ValueError to reject a configuration before it is saved or applied.
        self.checks: list[ConfigListener] = []
        self.outcomes: Counter[str] = Counter()  # answers given, by outcome
        self._clock = clock
        self._lock = threading.Lock()
        self._restoring: bytes | None = None  # restored on the topic, not yet seen coming back

    @classmethod
    def load(cls, base: AgentConfig) -> RemoteConfigManager:
        """The manager with the remote configuration saved by an earlier run, if it still fits
        the file (the file may have changed since); otherwise the file alone."""
        path = base.data_dir / REMOTE_CONFIG_FILE
        if not path.is_file():
            return cls(base)
        try:
            payload = path.read_bytes()
            remote = parse_remote_config(payload)
            manager = cls(base, remote)
            manager.payload = payload
        except (OSError, RemoteConfigError) as exc:
            log.warning(
                "ignoring the saved remote configuration %s (%s); using %s until the broker "
                "sends the current one",
                path,
                exc,
                "the configuration file",
            )
            return cls(base)
        log.info("remote configuration %s in effect (saved in %s)", remote.config_version, path)
        return manager

    @property
    def active_version(self) -> str:
        return self.active.config_version

    def answer(self, payload: bytes) -> ConfigAnswer:
        """:meth:`handle`, plus what the config topic must hold afterwards: after a rejection,
        the configuration in effect again. The broker's copy of a restored payload is not an
        operator's push: it is not applied again (unless another one was applied meanwhile:
        then that one is restored, so the topic ends on what the agent runs)."""
        with self._lock:
            if self._restoring is not None and payload == self._restoring:
                self._restoring = None
                if payload == self.payload:
                    return ConfigAnswer(None)
                self._restoring = self.payload
                return ConfigAnswer(None, self.payload)
        result = self.handle(payload)
        if result.outcome is not ConfigOutcome.REJECTED:
            return ConfigAnswer(result)
        with self._lock:
            self._restoring = self.payload
        log.warning(
            "restoring %s on the config topic, so a restart or a new device gets it and not "
            "the rejected one",
            f"configuration {self.active_version}" if self.payload else "no remote configuration",
        )
        return ConfigAnswer(result, self.payload)

    def handle(self, payload: bytes) -> ConfigResult:
        """Check and apply one message of the config topic; the answer to publish. Never
        raises for any payload: a bad one is rejected and the running configuration stays."""
        with self._lock:
            if not payload:
                return self._apply(None, None)
            version: str | None = None
            try:
                remote = parse_remote_config(payload)
                version = remote.config_version
                return self._apply(remote, payload)
            except RemoteConfigError as exc:
                version = version or _peek_version(payload)
                log.error("remote configuration %s rejected: %s", version or "(unreadable)", exc)
                return self._result(ConfigOutcome.REJECTED, version, _reason(exc.errors))
            except Exception as exc:  # a listener or the disk; the answer must still go out
                log.exception("remote configuration %s could not be applied", version)
                reason = f"could not be applied: {type(exc).__name__}: {exc}"
                return self._result(ConfigOutcome.REJECTED, version, _reason([reason]))

    def _apply(self, remote: RemoteConfig | None, payload: bytes | None) -> ConfigResult:
        active = effective_config(self.base, remote)
        for check in self.checks:
            try:
                check(active)
            except ValueError as exc:
                raise RemoteConfigError([str(exc)]) from None
        if payload is None:
            self.path.unlink(missing_ok=True)
        else:
            atomic_write(self.path, payload.decode("utf-8"), mode=0o600)
        self.remote, self.active = remote, active
        self.payload = payload or b""
        for listener in self.listeners:
            listener(active)
        if remote is None:
            log.info("remote configuration cleared: back to the file (%s)", active.config_version)
        else:
            log.info("remote configuration %s applied", remote.config_version)
        version = remote.config_version if remote is not None else None
        return self._result(ConfigOutcome.APPLIED, version, None)

    def _result(
        self, outcome: ConfigOutcome, version: str | None, reason: str | None
    ) -> ConfigResult:
        self.outcomes[outcome.value] += 1
        return ConfigResult(
            schema_version=SCHEMA_VERSION,
            site=self.base.site,
            spot=self.base.spot,
            agent=self.base.agent,
            config_version=version,
            outcome=outcome,
            reason=reason,
            active_version=self.active.config_version,
            sent_at=self._clock(),
        )


__all__ = ["REMOTE_CONFIG_FILE", "ConfigAnswer", "RemoteConfigManager", "effective_config"]

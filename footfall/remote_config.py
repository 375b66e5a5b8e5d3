"""The remote configuration: what an operator publishes, retained, on one agent's ``config``
topic (``footfall-aggregator fleet push-config``), and how both sides read it.

The aggregator checks the operator's file with :func:`load_remote_config` before publishing; the
agent decodes what arrives with :func:`parse_remote_config` and lays it over its own file
(:mod:`edge_agent.remote_config`, which also states the overlay's semantics). The sections are
declared once, in :mod:`footfall.remote_settings`.
"""

from pathlib import Path

from pydantic import Field, ValidationError

from footfall.connections import Section
from footfall.contract.types import ShortText
from footfall.remote_settings import (
    CountingSettings,
    CropSettings,
    DetectorCadence,
    RemoteClassifierSettings,
    RemoteDeliverySettings,
    TrackerSettings,
)
from footfall.settings import _format_errors, load_config

MAX_REMOTE_CONFIG_BYTES = 64 * 1024


class RemoteConfig(Section):
    """A configuration pushed to one agent. Every section is optional; one that is given
    replaces the agent file's section (missing keys take their defaults)."""

    config_version: ShortText = Field(
        description="Operator's version label; the agent reports it in every heartbeat once applied"
    )
    counting: CountingSettings | None = Field(
        default=None, description="Counting line and direction rules"
    )
    tracker: TrackerSettings | None = Field(default=None, description="Tracker thresholds")
    classifier: RemoteClassifierSettings | None = Field(
        default=None, description="Classifier thresholds"
    )
    crops: CropSettings | None = Field(default=None, description="Face crop policy")
    detector: DetectorCadence | None = Field(
        default=None, description="How often the detector runs"
    )
    delivery: RemoteDeliverySettings | None = Field(default=None, description="Heartbeat interval")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class RemoteConfigError(ValueError):
    """A remote configuration that cannot be applied; ``errors`` are ``key.path: message``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


def load_remote_config(path: Path) -> RemoteConfig:
    """Read a remote configuration from TOML (the operator's file). Raises ConfigError."""
    return load_config(RemoteConfig, path, env_prefix="FOOTFALL_REMOTE", environ={})


def parse_remote_config(payload: bytes) -> RemoteConfig:
    """Decode the JSON published on the config topic. Raises :class:`RemoteConfigError`."""
    if len(payload) > MAX_REMOTE_CONFIG_BYTES:
        raise RemoteConfigError(
            [f"payload: {len(payload)} bytes exceeds the limit of {MAX_REMOTE_CONFIG_BYTES}"]
        )
    try:
        # Strict, like the agent's own file: "12" is not a number, "yes" not a boolean.
        return RemoteConfig.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            if err["type"] == "json_invalid":
                errors.append(f"payload: not JSON ({err['ctx'].get('error', err['msg'])})")
        if errors:
            raise RemoteConfigError(errors) from None
        raise RemoteConfigError(_format_errors(exc, {})) from None

"""The agent's configuration: one pydantic model, loaded from TOML + environment, validated once."""

from pathlib import Path

from pydantic import Field

from footfall.connections import BrokerSettings, ObjectStoreSettings, Section
from footfall.contract.topics import AgentAddress
from footfall.ids import SafeId
from footfall.settings import load_config
from models.selection import ClassifierSettings

ENV_PREFIX = "FOOTFALL_AGENT"


class ModelsSettings(Section):
    """Where model files are found (see ``footfall-agent models list``)."""

    dir: Path | None = Field(
        default=None,
        description="Directory holding the model files; falls back to $FOOTFALL_MODELS_DIR, then the user cache",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Download cache; defaults to $FOOTFALL_CACHE_DIR or ~/.cache/footfall",
    )
    allow_download: bool = Field(
        default=True, description="Fetch missing models from their upstreams"
    )


class AgentConfig(Section):
    """Configuration of one edge agent (one camera at one spot)."""

    config_version: str = Field(
        default="1",
        min_length=1,
        max_length=64,
        description="Operator's version label of this configuration; reported in every heartbeat",
    )
    site: SafeId = Field(description="Site id")
    spot: SafeId = Field(description="Spot id within the site")
    agent: SafeId = Field(description="Agent id, unique in the fleet; also the MQTT client id")
    data_dir: Path = Field(
        default=Path("./agent-data"),
        description="State directory (outbox, crops waiting for upload)",
    )
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="Model files")
    classifier: ClassifierSettings = Field(
        default_factory=ClassifierSettings,
        description="Age/gender models and the licence guard on their choice",
    )
    mqtt: BrokerSettings | None = Field(
        default=None, description="Broker to publish to; omit to keep events on the device"
    )
    s3: ObjectStoreSettings | None = Field(
        default=None, description="Object store for face crops; omit to keep crops on the device"
    )

    @property
    def address(self) -> AgentAddress:
        return AgentAddress(self.site, self.spot, self.agent)


def load_agent_config(path: Path | None) -> AgentConfig:
    """Load and validate; raises :class:`footfall.settings.ConfigError` listing every problem."""
    return load_config(AgentConfig, path, env_prefix=ENV_PREFIX)

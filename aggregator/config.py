"""The aggregator's configuration: one pydantic model, loaded from TOML + environment."""

from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from footfall.connections import BrokerSettings, ObjectStoreSettings, Section
from footfall.contract.events import MAX_EVENT_BYTES
from footfall.ids import SafeId
from footfall.settings import load_config, read_secret

ENV_PREFIX = "FOOTFALL_AGGREGATOR"


class IngestSettings(Section):
    """How events are taken from the broker."""

    shared_group: SafeId = Field(
        default="aggregators",
        description="MQTT 5 shared-subscription group; aggregators in one group split the load",
    )
    client_id: SafeId = Field(
        default="aggregator-1",
        description="MQTT client id of this aggregator process (unique per process)",
    )
    max_payload_bytes: int = Field(
        default=MAX_EVENT_BYTES,
        ge=1024,
        le=1_048_576,
        description="Larger payloads go to dead letters unread",
    )


class StoreSettings(Section):
    """Where events are stored."""

    url: str = Field(
        default="sqlite:///footfall.db",
        description="SQLAlchemy URL: sqlite:///path.db (embedded) or postgresql+psycopg://user@host/db",
    )
    password: SecretStr | None = Field(
        default=None,
        description="Database password; environment only (FOOTFALL_AGGREGATOR__STORE__PASSWORD)",
    )
    password_file: Path | None = Field(
        default=None, description="File holding the database password"
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must start with sqlite: or postgresql")
        if urlsplit(value).password is not None:
            raise ValueError(
                "must not contain a password; set store.password through the environment or store.password_file"
            )
        return value

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_file, "the database password")


class SiteSettings(Section):
    """A site: a place with candidate spots, reported together in one workbook."""

    id: SafeId = Field(description="Site id, as agents send it")
    name: str | None = Field(
        default=None, max_length=100, description="Display name for the workbook"
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone of the site, e.g. Europe/Berlin"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value


class AggregatorConfig(Section):
    """Configuration of one aggregator process."""

    mqtt: BrokerSettings | None = Field(
        default=None, description="Broker to consume from; omit for replay-only use"
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Ingest settings")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Event store")
    s3: ObjectStoreSettings | None = Field(
        default=None, description="Object store for delivered workbooks"
    )
    sites: list[SiteSettings] = Field(
        default_factory=list, description="Known sites and their time zones"
    )

    @model_validator(mode="after")
    def _unique_sites(self) -> "AggregatorConfig":
        ids = [s.id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"site ids must be unique, repeated: {', '.join(dupes)}")
        return self


def load_aggregator_config(path: Path | None) -> AggregatorConfig:
    return load_config(AggregatorConfig, path, env_prefix=ENV_PREFIX)

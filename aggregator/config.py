"""The aggregator's configuration: one pydantic model, loaded from TOML + environment."""

from datetime import time, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from aggregator.delivery.settings import DeliverySettings
from aggregator.validate import LiveWindow
from footfall.connections import BrokerSettings, HealthSettings, ObjectStoreSettings, Section
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
    batch_max_events: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Most messages committed to the store in one transaction",
    )
    batch_max_wait_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Longest a received message waits for its batch to fill before it is committed",
    )
    receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=65_535,
        description="MQTT 5 Receive Maximum: unacknowledged messages the broker may have in flight "
        "to this process; bounds memory, and should be >= batch_max_events",
    )
    session_expiry_seconds: int = Field(
        default=3 * 24 * 3600,
        ge=0,
        le=0xFFFFFFFE,
        description="How long the broker keeps this process's session (and queues its share of "
        "messages) while it is disconnected. 0 for a one-off run under a new client id: the "
        "broker forgets it when it disconnects, so it strands none of the group's messages",
    )
    connect_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="How long the first connection may take before startup fails",
    )
    dead_letter_payload_bytes: int = Field(
        default=4096,
        ge=0,
        le=1_048_576,
        description="How much of a rejected payload is kept in the dead-letter table",
    )
    stats_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="How often the ingest counters are logged",
    )
    event_max_age_days: float = Field(
        default=366.0,
        gt=0,
        le=36_500,
        description="A live event first seen longer ago than this (by the aggregator's clock on "
        "arrival) goes to the dead letters as out_of_window: a device clock set far back. Keep it "
        "above the longest outage agents must ride out (they hold events until the broker takes "
        "them) and the age of recorded clips published through the fleet; older recordings go in "
        "with `replay`, which has no such limit",
    )
    event_max_ahead_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=7 * 86_400,
        description="A live event last seen more than this ahead of the aggregator's clock goes "
        "to the dead letters as out_of_window: a device clock running ahead",
    )
    commit_process: bool = Field(
        default=True,
        description="Validate and commit in a child process, so the broker connection and the "
        "commits each get a core (about twice the events/s of one process); false keeps "
        "everything in one process",
    )

    def live_window(self) -> LiveWindow:
        return LiveWindow(
            max_age=timedelta(days=self.event_max_age_days),
            max_ahead=timedelta(seconds=self.event_max_ahead_seconds),
        )

    @model_validator(mode="after")
    def _window_holds_a_batch(self) -> "IngestSettings":
        if self.receive_maximum < self.batch_max_events:
            raise ValueError(
                "receive_maximum must be >= batch_max_events, or a batch can never fill"
            )
        return self


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
        parts = urlsplit(value)
        # libpq takes a password in the query too (?password=...).
        in_query = any(k.lower() == "password" for k, _ in parse_qsl(parts.query))
        if parts.password is not None or in_query:
            raise ValueError(
                "must not contain a password; set store.password through the environment or store.password_file"
            )
        return value

    auto_upgrade: bool = Field(
        default=True,
        description="Apply pending schema migrations when the aggregator opens the store; set false "
        "to require an explicit `footfall-aggregator db upgrade`",
    )

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_file, "the database password")


class FleetSettings(Section):
    """How agent liveness is judged from their status and heartbeat messages."""

    heartbeat_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Interval at which agents send heartbeats"
    )
    coverage_gap_multiple: float = Field(
        default=3.0,
        ge=1.0,
        le=100.0,
        description="A spot counts as covered between two heartbeats only if they are at most this "
        "many heartbeat intervals apart",
    )
    silent_after_seconds: float = Field(
        default=120.0,
        gt=0,
        le=7 * 86_400,
        description="An online agent not heard from for longer than this is flagged silent",
    )


class SiteSettings(Section):
    """A site: a place with candidate spots, reported together in one workbook."""

    id: SafeId = Field(description="Site id, as agents send it")
    name: str | None = Field(
        default=None, max_length=100, description="Display name for the workbook"
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone of the site, e.g. Europe/Berlin"
    )
    deliver_at: time = Field(
        default=time(6, 0),
        description="Local time of the site at which the previous day's workbook is delivered",
    )
    email_to: list[str] = Field(
        default_factory=list, description="Recipients of the report link (needs delivery.smtp)"
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
    fleet: FleetSettings = Field(default_factory=FleetSettings, description="Agent liveness")
    s3: ObjectStoreSettings | None = Field(
        default=None, description="Object store for delivered workbooks"
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings,
        description="Metrics and health endpoint of `run` (off by default)",
    )
    sites: list[SiteSettings] = Field(
        default_factory=list, description="Known sites and their time zones"
    )
    delivery: DeliverySettings | None = Field(
        default=None,
        description="Nightly delivery of site workbooks (needs [s3]); the service schedules it",
    )

    @model_validator(mode="after")
    def _unique_sites(self) -> "AggregatorConfig":
        ids = [s.id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"site ids must be unique, repeated: {', '.join(dupes)}")
        if self.delivery is not None and self.s3 is None:
            raise ValueError("delivery needs an [s3] section to upload the workbooks to")
        return self

    def site(self, site_id: str) -> "SiteSettings":
        for site in self.sites:
            if site.id == site_id:
                return site
        known = ", ".join(s.id for s in self.sites) or "none"
        raise KeyError(f"site {site_id!r} is not configured (known: {known})")


def load_aggregator_config(path: Path | None) -> AggregatorConfig:
    return load_config(AggregatorConfig, path, env_prefix=ENV_PREFIX)

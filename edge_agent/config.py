"""The agent's configuration: one pydantic model, loaded from TOML + environment, validated once."""

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edge_agent.vision.settings import (
    ClassifierSettings,
    CountingSettings,
    CropSettings,
    DetectorSettings,
    PersonSettings,
    PipelineMode,
    SourceSettings,
    TrackerSettings,
)
from footfall.connections import (
    BrokerSettings,
    HealthSettings,
    MqttProtocol,
    ObjectStoreSettings,
    Section,
)
from footfall.contract.topics import AgentAddress
from footfall.contract.types import ShortText
from footfall.ids import SafeId
from footfall.remote_settings import RemoteDeliverySettings
from footfall.settings import load_config

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


class Synchronous(StrEnum):
    """How hard the outbox pushes an accepted event to the disk (SQLite ``synchronous``)."""

    FULL = "full"
    NORMAL = "normal"


MIB = 1024 * 1024


class OutboxSettings(Section):
    """The durable on-device outbox (SQLite under ``data_dir``)."""

    max_bytes: int = Field(
        default=1024 * MIB,
        ge=1 * MIB,
        description="Cap on what waits in the outbox (events + face crops, in bytes). To stay "
        "under it, pending crops are dropped oldest first and their events get a crop_note; "
        "events are never dropped, so events alone may exceed it",
    )
    min_free_disk_bytes: int = Field(
        default=64 * MIB,
        ge=0,
        description="When the disk holding data_dir has less free space than this, crops are "
        "dropped oldest first as if the outbox were over its cap",
    )
    synchronous: Synchronous = Field(
        default=Synchronous.FULL,
        description="full: an accepted event survives a power cut (one fsync per event, about "
        "4 ms on a plain SSD); normal: it survives a crash or kill of the agent, but the last "
        "events before a power cut may be lost",
    )


class Confirmation(StrEnum):
    RECEIPT = "receipt"
    BROKER = "broker"


class DeliverySettings(RemoteDeliverySettings):
    """Moving events and crops out of the outbox: MQTT publishing, crop uploads, heartbeat (the
    interval, which may also change remotely, is declared in the base)."""

    inflight_window: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Events published but not yet acknowledged by the broker, at most; capped "
        "further by the broker's Receive Maximum (MQTT 5)",
    )
    shutdown_drain_seconds: float = Field(
        default=10.0,
        ge=0.0,
        le=600.0,
        description="On SIGTERM, how long to keep sending what is in the outbox before exiting; "
        "whatever is left stays in the outbox for the next start",
    )
    confirm: Confirmation = Field(
        default=Confirmation.RECEIPT,
        description="When an event may leave the outbox: 'receipt' once an aggregator says it "
        "committed it (survives a broker crash or an aggregator killed mid-batch), 'broker' "
        "at the broker's PUBACK (for aggregators that send no receipts; a broker crash can then "
        "lose what it held)",
    )
    receipt_timeout_seconds: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="With confirm = 'receipt': how long without any receipt before events "
        "published but not confirmed are published again (doubling while none comes, up to 15 "
        "minutes)",
    )
    crop_retry_min_seconds: float = Field(
        default=1.0, gt=0, le=60, description="First delay before retrying a failed crop upload"
    )
    crop_retry_max_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest delay between crop upload retries"
    )

    @model_validator(mode="after")
    def _retry_order(self) -> Self:
        if self.crop_retry_max_seconds < self.crop_retry_min_seconds:
            raise ValueError("crop_retry_max_seconds must be >= crop_retry_min_seconds")
        return self


class AgentConfig(Section):
    """Configuration of one edge agent (one camera at one spot)."""

    config_version: ShortText = Field(
        default="1",
        description="Operator's version label of this configuration; reported in every heartbeat",
    )
    site: SafeId = Field(description="Site id")
    spot: SafeId = Field(description="Spot id within the site")
    agent: SafeId = Field(description="Agent id, unique in the fleet; also the MQTT client id")
    data_dir: Path = Field(
        default=Path("./agent-data"),
        description="State directory (outbox, crops waiting for upload)",
    )
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings, description="Durable on-device outbox"
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Publishing, crop uploads and heartbeat"
    )
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="Model files")
    mqtt: BrokerSettings | None = Field(
        default=None, description="Broker to publish to; omit to keep events on the device"
    )
    s3: ObjectStoreSettings | None = Field(
        default=None, description="Object store for face crops; omit to keep crops on the device"
    )
    source: SourceSettings = Field(default_factory=SourceSettings, description="Live video source")
    mode: PipelineMode = Field(
        default=PipelineMode.PERSON,
        description="person: detect and track bodies, count each person whether or not their "
        "face is seen, and take faces found on them for gender and age (street cameras, people "
        "in full view); face: detect and track faces only (close-up kiosk or door cameras "
        "where bodies are cut off by the frame)",
    )
    person: PersonSettings = Field(
        default_factory=PersonSettings, description="Person detection (mode = person)"
    )
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings, description="Face detection"
    )
    tracker: TrackerSettings = Field(
        default_factory=TrackerSettings,
        validate_default=True,  # so the check against `detector` runs on the default too
        description="Following people between frames",
    )
    counting: CountingSettings = Field(
        default_factory=CountingSettings, description="Direction: counting line or frame edges"
    )
    classifier: ClassifierSettings = Field(
        default_factory=ClassifierSettings, description="Gender and age group per person"
    )
    crops: CropSettings = Field(default_factory=CropSettings, description="Face crops")
    health: HealthSettings = Field(
        default_factory=HealthSettings, description="Metrics and health endpoint (off by default)"
    )

    @field_validator("tracker")
    @classmethod
    def _detector_feeds_tracker(
        cls, tracker: TrackerSettings, info: ValidationInfo
    ) -> TrackerSettings:
        # A field validator rather than a model validator: its error then points at `tracker`
        # and echoes only that section, never the whole input (which may hold secrets).
        detector = info.data.get("detector")
        if detector is not None and tracker.low_score < detector.score_threshold:
            raise ValueError(
                f"low_score ({tracker.low_score}) is below "
                f"detector.score_threshold ({detector.score_threshold}): detections under "
                "the detector's threshold never reach the tracker; lower the detector threshold "
                "or raise tracker.low_score"
            )
        return tracker

    @field_validator("mqtt")
    @classmethod
    def _confirmation_the_protocol_can_give(
        cls, mqtt: BrokerSettings | None, info: ValidationInfo
    ) -> BrokerSettings | None:
        delivery = info.data.get("delivery")
        if (
            mqtt is not None
            and mqtt.protocol is MqttProtocol.V311
            and delivery is not None
            and delivery.confirm is Confirmation.BROKER
        ):
            raise ValueError(
                "protocol '3.1.1' with delivery.confirm = 'broker' can lose events: an MQTT "
                "3.1.1 PUBACK looks the same whether a subscriber took the event, none did, or "
                "the ACL denied it; use protocol '5', or delivery.confirm = 'receipt'"
            )
        return mqtt

    @property
    def address(self) -> AgentAddress:
        return AgentAddress(self.site, self.spot, self.agent)


def load_agent_config(path: Path | None, defaults: Mapping[str, Any] | None = None) -> AgentConfig:
    """Load and validate; raises :class:`footfall.settings.ConfigError` listing every problem.
    ``defaults`` fill top-level keys the file leaves out (e.g. a clip's site, spot and agent)."""
    return load_config(AgentConfig, path, env_prefix=ENV_PREFIX, defaults=defaults)

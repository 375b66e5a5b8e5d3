"""Settings for the two outside services both sides talk to: the MQTT broker and S3."""

from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from footfall.contract.topics import DEFAULT_PREFIX, check_prefix
from footfall.settings import read_secret


class Section(BaseModel):
    """Base of every configuration section: unknown keys are errors, not silently ignored, and
    numbers are finite (TOML has ``inf`` and ``nan``; no setting means either)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MqttProtocol(StrEnum):
    V5 = "5"
    V311 = "3.1.1"


class BrokerSettings(Section):
    """How to reach the MQTT broker."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address")
    port: int = Field(
        default=8883, ge=1, le=65535, description="Broker port (8883 = MQTT over TLS)"
    )
    protocol: MqttProtocol = Field(
        default=MqttProtocol.V5, description="MQTT protocol version: 5 or 3.1.1"
    )
    tls: bool = Field(
        default=True, description="Use TLS; strongly recommended outside a test bench"
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificate (PEM) that signed the broker's certificate; system CAs if unset",
    )
    username: str | None = Field(default=None, description="User name on the broker")
    password: SecretStr | None = Field(
        default=None, description="Password; environment only (e.g. FOOTFALL_AGENT__MQTT__PASSWORD)"
    )
    password_file: Path | None = Field(
        default=None, description="File holding the password (e.g. a mounted secret)"
    )
    topic_prefix: str = Field(default=DEFAULT_PREFIX, description="First levels of every topic")
    keepalive_seconds: int = Field(
        default=30, ge=5, le=3600, description="MQTT keep-alive interval"
    )
    reconnect_min_seconds: float = Field(
        default=1.0, gt=0, le=60, description="First reconnect delay"
    )
    reconnect_max_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest reconnect delay (backoff cap)"
    )

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds must be >= reconnect_min_seconds")
        return self

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_file, "the MQTT password")


class ServerSideEncryption(StrEnum):
    NONE = "none"
    AES256 = "AES256"
    KMS = "aws:kms"


class ObjectStoreSettings(Section):
    """Where objects (face crops, workbooks) go: AWS S3, MinIO, SeaweedFS alike."""

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint, e.g. http://127.0.0.1:8333; AWS if unset"
    )
    region: str = Field(default="us-east-1", description="S3 region")
    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$",
        description="Bucket name",
    )
    access_key_id: str | None = Field(
        default=None, description="Access key id; the AWS default chain if unset"
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        description="Secret key; environment only (e.g. FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY)",
    )
    secret_access_key_file: Path | None = Field(
        default=None, description="File holding the secret key"
    )
    server_side_encryption: ServerSideEncryption = Field(
        default=ServerSideEncryption.NONE, description="Server-side encryption of stored objects"
    )
    kms_key_id: str | None = Field(
        default=None, description="KMS key id when server_side_encryption = aws:kms"
    )
    addressing_style: Literal["path", "virtual", "auto"] = Field(
        default="path", description="Bucket addressing; 'path' works with MinIO and SeaweedFS"
    )

    def secret_value(self) -> str | None:
        return read_secret(self.secret_access_key, self.secret_access_key_file, "the S3 secret key")


class HealthSettings(Section):
    """The HTTP endpoint for Prometheus (/metrics) and health checks (/healthz, /readyz)."""

    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the endpoint; unset or 0 turns it off",
    )
    bind: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; 0.0.0.0 to be scraped from other machines (in a "
        "container, or by a Prometheus elsewhere)",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.port)

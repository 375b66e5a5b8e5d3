"""Configuration of the nightly delivery."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from footfall.connections import Section
from footfall.settings import read_secret


class SmtpSettings(Section):
    """Mail server used to send the report links."""

    host: str = Field(min_length=1, description="SMTP server host")
    port: int = Field(
        default=587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS, 25 plain)"
    )
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls, tls (implicit, port 465) or none (local relays only)",
    )
    username: str | None = Field(default=None, description="SMTP user, if the server needs a login")
    password: SecretStr | None = Field(
        default=None,
        description="SMTP password; environment only (FOOTFALL_AGGREGATOR__DELIVERY__SMTP__PASSWORD)",
    )
    password_file: Path | None = Field(default=None, description="File holding the SMTP password")
    sender: str = Field(min_length=3, description="From address of report mails")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Network timeout")

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_file, "the SMTP password")


class DeliverySettings(Section):
    """Where and how workbooks are delivered."""

    in_service: bool = Field(
        default=True,
        description="Deliver at each site's deliver_at from within `footfall-aggregator run`. Set "
        "false when a scheduler (a Kubernetes CronJob) runs `footfall-aggregator deliver` "
        "instead: with several aggregator replicas each would otherwise deliver",
    )
    key_prefix: str = Field(
        default="reports",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="First levels of report object keys",
    )
    link_expiry_hours: float = Field(
        default=168,
        gt=0,
        le=168,
        description="Validity of the presigned link (S3 allows at most 7 days = 168 h)",
    )
    attempts: int = Field(
        default=3, ge=1, le=20, description="Tries per site before the delivery is reported failed"
    )
    retry_delay_seconds: float = Field(
        default=30.0, ge=0, description="Pause before the first retry; doubles each time"
    )
    work_dir: Path | None = Field(
        default=None, description="Where workbooks are built before upload (a temp dir if unset)"
    )
    crop_link_base: str | None = Field(
        default=None,
        description="Prefix turning crop keys into links in the person lists, e.g. https://crops.example.net/",
    )
    crop_bucket: str | None = Field(
        default=None,
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$",
        description="Bucket the agents upload face crops to, on the [s3] store (its endpoint and "
        "credentials): each person in the person lists gets a small picture from it. Unset: "
        "no pictures, only the crop links",
    )
    pictures_per_sheet: int = Field(
        default=2000,
        ge=0,
        le=100_000,
        description="Pictures at most per person-list sheet (the first people with a crop); "
        "the rows after them keep only the crop link. 0: no pictures",
    )
    smtp: SmtpSettings | None = Field(
        default=None, description="Send report links by e-mail; omit to skip mail"
    )

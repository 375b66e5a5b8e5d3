"""The files and credentials the delivery side needs, checked before anything starts.

An agent whose broker password file is missing used to start anyway: the camera opened, the
pipeline ran, and the MQTT sender's thread died on its first connection attempt with a
traceback, while the process carried on and exited 0. These checks run first - before the models
load and the camera opens (``run``), and when the delivery side is built (``deliver``, clips
published to the fleet) - so such an agent stops at once with one line naming the setting and the
file, and a non-zero exit. The MQTT sender repeats the broker checks before every connection
attempt (it reads the files anew each time, which is how a rotated password takes effect): a file
that goes missing later ends the agent the same way, and the supervisor's restart picks up the
fixed file.

Only what a restart of the agent cannot change is checked here: files that exist and can be read,
a CA file that holds certificates, credentials that are complete. Whether the broker or S3 accept
them is for the connection to find out; those answers can change without the agent (an account
created late, a broker certificate replaced), so they are retried, never fatal.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from edge_agent.config import ENV_PREFIX, AgentConfig
from footfall.connections import BrokerSettings, ObjectStoreSettings


class SetupError(Exception):
    """A setting names a file that cannot be used, or credentials are incomplete: one line that
    names the setting (and the file); nothing but a fix and a restart helps."""


def check_delivery(config: AgentConfig) -> None:
    """Every check for the sections ``config`` has; raises :class:`SetupError`."""
    if config.mqtt is not None:
        check_broker_files(config.mqtt)
    if config.s3 is not None:
        check_store_credentials(config.s3)


def check_broker_files(settings: BrokerSettings) -> None:
    """The CA file (when TLS) holds certificates; the password file can be read and is not
    empty."""
    if settings.tls and settings.ca_file is not None:
        _check_ca_file(settings.ca_file)
    if settings.password_file is not None:
        read_secret_file("mqtt.password_file", settings.password_file)


def check_store_credentials(settings: ObjectStoreSettings) -> None:
    """The secret key file can be read; an access key id comes with a secret and the other way
    round; without either, the AWS default chain (environment, shared files, instance role) has
    credentials."""
    secret = settings.secret_access_key is not None
    if settings.secret_access_key_file is not None:
        read_secret_file("s3.secret_access_key_file", settings.secret_access_key_file)
        secret = True
    env = f"{ENV_PREFIX}__S3__SECRET_ACCESS_KEY"
    if settings.access_key_id is not None and not secret:
        raise SetupError(
            f"s3.access_key_id is set but there is no secret key: set {env} or "
            "s3.secret_access_key_file"
        )
    if settings.access_key_id is None and secret:
        raise SetupError("s3: a secret key is given but s3.access_key_id is not set")
    if settings.access_key_id is None and _default_chain_empty():
        raise SetupError(
            f"s3: no credentials: set s3.access_key_id and {env} (or s3.secret_access_key_file), "
            "or provide AWS credentials in the environment"
        )


def _check_ca_file(path: Path) -> None:
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise SetupError(
                f"mqtt.ca_file {path}: no CA certificate in it (PEM expected): {exc.reason}"
            ) from None
        raise SetupError(f"mqtt.ca_file {path}: cannot read it: {_reason(exc)}") from None


def read_secret_file(setting: str, path: Path) -> str:
    """The secret in ``path`` (surrounding white space removed), read as the services read it;
    :class:`SetupError` naming ``setting`` when it cannot be read or is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{setting} {path}: cannot read it: {_reason(exc)}") from None
    if not text:
        raise SetupError(f"{setting} {path}: the file is empty")
    return text


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _default_chain_empty() -> bool:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.session.Session().get_credentials() is None
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise SetupError(f"s3: no usable AWS credentials: {exc}") from None

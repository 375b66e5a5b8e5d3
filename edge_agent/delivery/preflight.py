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

The checks themselves are :mod:`footfall.preflight` (the aggregator runs the same ones on its own
sections); this module applies them to the agent's configuration.
"""

from __future__ import annotations

from edge_agent.config import ENV_PREFIX, AgentConfig
from footfall.connections import ObjectStoreSettings
from footfall.preflight import (
    Check,
    SetupError,
    broker_file_checks,
    check_broker_files,
    check_writable_directory,
    read_secret_file,
)
from footfall.preflight import check_store_credentials as _check_store_credentials

__all__ = [
    "SetupError",
    "check_broker_files",
    "check_data_dir",
    "check_delivery",
    "check_store_credentials",
    "delivery_checks",
    "read_secret_file",
]


def check_delivery(config: AgentConfig) -> None:
    """Every check for the sections ``config`` has; raises :class:`SetupError` (the first)."""
    for check in delivery_checks(config):
        check()


def delivery_checks(config: AgentConfig) -> list[Check]:
    """The checks :func:`check_delivery` runs, one callable each (``validate-config`` runs them
    all and lists every failure)."""
    checks: list[Check] = [lambda: check_data_dir(config)]
    if config.mqtt is not None:
        checks += broker_file_checks(config.mqtt)
    if config.s3 is not None:
        s3 = config.s3
        checks.append(lambda: check_store_credentials(s3))
    return checks


def check_data_dir(config: AgentConfig) -> None:
    """The outbox and the crops waiting for upload live under ``data_dir``: it must be
    writable (or creatable)."""
    check_writable_directory("data_dir", config.data_dir)


def check_store_credentials(settings: ObjectStoreSettings) -> None:
    """:func:`footfall.preflight.check_store_credentials` with the agent's environment names."""
    _check_store_credentials(settings, ENV_PREFIX)

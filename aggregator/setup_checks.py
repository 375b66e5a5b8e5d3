"""The files and credentials an aggregator configuration names, checked before a command uses
them: the broker's CA and password files, the store's password file and the directory of a
SQLite store, the S3 credentials, the delivery's work directory and SMTP password file.

``run`` used to open the store, apply migrations and start consuming before it found a missing
password file; ``fleet push-config`` and ``deliver`` ended in a traceback. Each command now runs
the checks for the sections it uses first (:class:`footfall.preflight.SetupError`, one line
naming the setting and the file), and ``validate-config`` runs them all and lists every problem.
"""

from __future__ import annotations

from aggregator.config import ENV_PREFIX, AggregatorConfig
from footfall.preflight import (
    Check,
    broker_file_checks,
    check_output_file,
    check_store_credentials,
    check_writable_directory,
    collect,
    read_secret_file,
)


def broker_checks(config: AggregatorConfig) -> list[Check]:
    """The ``[mqtt]`` section's files (nothing without one)."""
    return [] if config.mqtt is None else broker_file_checks(config.mqtt)


def store_checks(config: AggregatorConfig) -> list[Check]:
    """The store's password file; the directory of a SQLite file, which must be writable (the
    store writes a journal beside the file)."""
    from aggregator.store.engine import sqlite_file

    store = config.store
    checks: list[Check] = []
    if store.password_file is not None:
        password_file = store.password_file
        checks.append(lambda: read_secret_file("store.password_file", password_file))
    path = sqlite_file(store.url)
    if path is not None:
        checks.append(lambda: check_output_file("store.url", path))
    return checks


def delivery_checks(config: AggregatorConfig) -> list[Check]:
    """What the nightly delivery needs: S3 credentials, its work directory, the SMTP password
    file (nothing without a ``[delivery]`` section)."""
    delivery, s3 = config.delivery, config.s3
    if delivery is None:
        return []
    checks: list[Check] = []
    if s3 is not None:
        checks.append(lambda: check_store_credentials(s3, ENV_PREFIX))
    if delivery.work_dir is not None:
        work_dir = delivery.work_dir
        checks.append(lambda: check_writable_directory("delivery.work_dir", work_dir))
    smtp = delivery.smtp
    if smtp is not None and smtp.password_file is not None:
        password_file = smtp.password_file
        checks.append(lambda: read_secret_file("delivery.smtp.password_file", password_file))
    return checks


def all_checks(config: AggregatorConfig) -> list[Check]:
    """Every check for the sections ``config`` has (``validate-config``)."""
    checks = [*broker_checks(config), *store_checks(config), *delivery_checks(config)]
    if config.s3 is not None and config.delivery is None:
        s3 = config.s3
        checks.append(lambda: check_store_credentials(s3, ENV_PREFIX))
    return checks


def problems(checks: list[Check]) -> list[str]:
    """The line of each failing check, in order."""
    return collect(checks)

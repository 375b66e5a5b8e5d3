"""Checks of the files and credentials a configuration names, shared by both programs.

A configuration can be valid and still name a CA file that is not there, a password file that
cannot be read or a directory the process may not write. Each check here raises
:class:`SetupError` with one line naming the setting and the file; the programs run them before
they start (so a broken setup never opens a camera or a store) and ``validate-config`` runs all
of them and lists every problem.

Only what a restart cannot change is checked: files that exist and can be read, a CA file that
holds certificates, credentials that are complete, directories that can be written. Whether the
broker or S3 accept the credentials is for the connection to find out.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from footfall.connections import BrokerSettings, ObjectStoreSettings

Check = Callable[[], object]
"""One check: raises :class:`SetupError`, or returns (whatever it returns is not used)."""


class SetupError(Exception):
    """A setting names a file that cannot be used, or credentials are incomplete: one line that
    names the setting (and the file); nothing but a fix and a restart helps."""


def check_broker_files(settings: BrokerSettings, section: str = "mqtt") -> None:
    """The CA file (when TLS) holds certificates; the password file can be read and is not
    empty. Raises for the first that cannot be used."""
    for check in broker_file_checks(settings, section):
        check()


def broker_file_checks(settings: BrokerSettings, section: str = "mqtt") -> list[Check]:
    """The checks of :func:`check_broker_files`, one callable per file."""
    checks: list[Check] = []
    ca_file, password_file = settings.ca_file, settings.password_file
    if settings.tls and ca_file is not None:
        checks.append(lambda: check_ca_file(f"{section}.ca_file", ca_file))
    if password_file is not None:
        checks.append(lambda: read_secret_file(f"{section}.password_file", password_file))
    return checks


def check_store_credentials(
    settings: ObjectStoreSettings, env_prefix: str, section: str = "s3"
) -> None:
    """The secret key file can be read; an access key id comes with a secret and the other way
    round; without either, the AWS default chain (environment, shared files, instance role) has
    credentials."""
    secret = settings.secret_access_key is not None
    if settings.secret_access_key_file is not None:
        read_secret_file(f"{section}.secret_access_key_file", settings.secret_access_key_file)
        secret = True
    env = f"{env_prefix}__{section.upper()}__SECRET_ACCESS_KEY"
    if settings.access_key_id is not None and not secret:
        raise SetupError(
            f"{section}.access_key_id is set but there is no secret key: set {env} or "
            f"{section}.secret_access_key_file"
        )
    if settings.access_key_id is None and secret:
        raise SetupError(f"{section}: a secret key is given but {section}.access_key_id is not set")
    if settings.access_key_id is None and _default_chain_empty(section):
        raise SetupError(
            f"{section}: no credentials: set {section}.access_key_id and {env} (or "
            f"{section}.secret_access_key_file), or provide AWS credentials in the environment"
        )


def check_ca_file(setting: str, path: Path) -> None:
    """``path`` can be read and holds at least one CA certificate (PEM)."""
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise SetupError(
                f"{setting} {path}: no CA certificate in it (PEM expected): {exc.reason}"
            ) from None
        raise SetupError(f"{setting} {path}: cannot read it: {reason(exc)}") from None


def read_secret_file(setting: str, path: Path) -> str:
    """The secret in ``path`` (surrounding white space removed), read as the services read it;
    :class:`SetupError` naming ``setting`` when it cannot be read or is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{setting} {path}: cannot read it: {reason(exc)}") from None
    if not text:
        raise SetupError(f"{setting} {path}: the file is empty")
    return text


def check_directory(setting: str, path: Path) -> None:
    """``path`` is an existing directory (one the program reads from, e.g. the models)."""
    if not path.exists():
        raise SetupError(f"{setting} {path}: no such directory; create it or correct {setting}")
    if not path.is_dir():
        raise SetupError(f"{setting} {path}: not a directory; give a directory in {setting}")


def check_writable_directory(setting: str, path: Path) -> None:
    """``path`` is a directory this process may write in, or one it may create (its nearest
    existing parent is a directory it may write in)."""
    _check_writable(setting, path, path)


def check_output_file(setting: str, path: Path) -> None:
    """A file can be written at ``path``: it is not a directory, and its directory is writable
    or can be created."""
    if path.is_dir():
        raise SetupError(f"{setting} {path}: is a directory; give the name of a file in it")
    _check_writable(setting, path.parent, path)


def _check_writable(setting: str, directory: Path, shown: Path) -> None:
    # Nothing is left behind: the check creates a temporary directory and removes it, because
    # os.access says yes to root where the file system says no (/proc, a read-only mount).
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SetupError(f"{setting} {shown}: {existing} is not a directory; correct {setting}")
    try:
        Path(tempfile.mkdtemp(prefix=".footfall-check-", dir=existing)).rmdir()
    except OSError as exc:
        raise SetupError(
            f"{setting} {shown}: cannot write in {existing}: {reason(exc)}; set {setting} to a "
            "place this user may write"
        ) from None


def collect(checks: list[Check]) -> list[str]:
    """Run every check and return the line of each that failed, in order."""
    problems = []
    for check in checks:
        try:
            check()
        except SetupError as exc:
            problems.append(str(exc))
    return problems


def reason(exc: Exception) -> str:
    """What the operating system said, without the errno and the file name around it."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _default_chain_empty(section: str) -> bool:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.session.Session().get_credentials() is None
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise SetupError(f"{section}: no usable AWS credentials: {exc}") from None

"""Mosquitto's password file and ACL file, rendered from a list of accounts.

One renderer serves the operator's fleet registry (``aggregator/provisioning.py``) and the test
broker of ``infra/devservices``, so the ACL the tests run against is the ACL production gets.
Standard library only: the dev services import it before any extra is installed.

Password hashes use Mosquitto 2.0's own format, ``$7$<iterations>$<salt>$<hash>``: PBKDF2 with
HMAC-SHA512 over the password, a 12-byte random salt, a 64-byte digest, both in standard base64.
Iterations default to 101, Mosquitto's own default. Every password made here is 192 random bits,
which no amount of key stretching would make any harder to guess, while each CONNECT pays for the
iterations, and a thousand agents reconnect at once after a broker restart.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_ITERATIONS = 101
_SALT_BYTES = 12
_HASH_RE = re.compile(r"\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,3}")

AGENT_WRITE_CHANNELS = ("events", "status", "heartbeat", "config-result")
AGENT_READ_CHANNELS = ("receipts",)
# Its own config: read, and written back when it rejects a push (the configuration in effect is
# retained again, so a restart or a new device does not get the rejected one).
AGENT_READWRITE_CHANNELS = ("config",)


def new_password() -> str:
    """A fresh broker password: 32 URL-safe characters (192 random bits)."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """The ``$7$`` hash Mosquitto 2.0 accepts in its password file (never the password itself)."""
    if not password:
        raise ValueError("password must not be empty")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    """True if ``hashed`` (a ``$7$`` hash) was made from ``password``."""
    match = _HASH_RE.fullmatch(hashed)
    if match is None:
        return False
    iterations, salt, digest = int(match[1]), match[2], match[3]
    expected = base64.b64decode(digest)
    actual = hashlib.pbkdf2_hmac(
        "sha512", password.encode("utf-8"), base64.b64decode(salt), iterations
    )
    return hmac.compare_digest(expected, actual)


def is_mosquitto_hash(value: str) -> bool:
    return _HASH_RE.fullmatch(value) is not None


class Role(enum.StrEnum):
    """What a broker account may do (see :func:`acl_lines`)."""

    AGENT = "agent"
    AGGREGATOR = "aggregator"
    OPERATOR = "operator"
    ADMIN = "admin"


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"topic prefix {prefix!r} is not 1-4 levels of letters, digits, '-', '_'")
    return prefix


@dataclass(frozen=True)
class AccountAcl:
    """The part of an account the ACL needs: its name, role, topic prefix and, for an agent,
    where it sits in the fleet."""

    name: str
    role: Role
    topic_prefix: str
    site: str | None = None
    spot: str | None = None
    agent: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"broker user name {self.name!r}: 1-64 letters, digits, '.', '_', '-', starting "
                "with a letter or digit"
            )
        object.__setattr__(self, "role", Role(self.role))
        check_prefix(self.topic_prefix)
        if self.role is Role.AGENT:
            for label, value in (("site", self.site), ("spot", self.spot), ("agent", self.agent)):
                if value is None or not _ID_RE.fullmatch(value):
                    raise ValueError(f"agent account {self.name!r} needs a valid {label} id")

    @property
    def agent_base(self) -> str:
        if self.role is not Role.AGENT:
            raise ValueError(f"{self.name!r} is not an agent")
        return f"{self.topic_prefix}/{self.site}/{self.spot}/{self.agent}"


def acl_lines(account: AccountAcl, extra: Sequence[str] = ()) -> list[str]:
    """The ACL block of one account.

    - agent: writes ``<base>/{events,status,heartbeat,config-result}``, reads
      ``<base>/receipts`` and reads and writes ``<base>/config`` (to put the configuration in
      effect back after rejecting a push), where ``<base>`` is
      ``<prefix>/<site>/<spot>/<agent>``; nothing else.
    - aggregator: reads everything under its prefix; writes only every agent's ``receipts``
      (so no agent can confirm its own or another agent's events).
    - operator: writes and reads every agent's ``config`` (a retained config is published and
      cleared there) and reads every ``config-result``; nothing else.
    - admin: reads and writes every topic (tests and break-glass only).
    """
    prefix = account.topic_prefix
    lines = [f"user {account.name}"]
    if account.role is Role.ADMIN:
        lines.append("topic readwrite #")
    elif account.role is Role.AGGREGATOR:
        lines.append(f"topic read {prefix}/#")
        lines.append(f"topic write {prefix}/+/+/+/receipts")
    elif account.role is Role.OPERATOR:
        lines.append(f"topic readwrite {prefix}/+/+/+/config")
        lines.append(f"topic read {prefix}/+/+/+/config-result")
    else:
        base = account.agent_base
        lines += [f"topic write {base}/{ch}" for ch in AGENT_WRITE_CHANNELS]
        lines += [f"topic read {base}/{ch}" for ch in AGENT_READ_CHANNELS]
        lines += [f"topic readwrite {base}/{ch}" for ch in AGENT_READWRITE_CHANNELS]
    lines += list(extra)
    return lines


def render_acl(blocks: Iterable[Sequence[str]], *, header: str) -> str:
    """The whole ACL file: a comment header, then one block per account. Mosquitto gives an
    account without a block no access at all, and with no ``topic`` line outside a ``user``
    block anonymous clients get nothing either."""
    parts = ["\n".join(f"# {line}" for line in header.splitlines())]
    parts += ["\n".join(block) for block in blocks]
    return "\n\n".join(parts) + "\n"


def render_passwd(entries: Iterable[tuple[str, str]]) -> str:
    """The whole password file from ``(user name, $7$ hash)`` pairs."""
    lines = []
    seen: set[str] = set()
    for name, hashed in entries:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"broker user name {name!r} is not valid")
        if name in seen:
            raise ValueError(f"broker user {name!r} appears twice")
        if not is_mosquitto_hash(hashed):
            # Refuses anything that could be a plain password written by mistake.
            raise ValueError(f"the password entry of {name!r} is not a $7$ hash")
        seen.add(name)
        lines.append(f"{name}:{hashed}")
    return "".join(f"{line}\n" for line in lines)


def atomic_write(
    path: Path, text: str, *, mode: int = 0o640, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``text`` in one rename: Mosquitto may re-read the file at any
    SIGHUP and must never see it half-written. ``owner`` is ``(uid, gid)``, applied when
    running as root (Mosquitto reads these files after dropping to its own user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""The fleet registry: broker accounts of agents and services, from which Mosquitto's password
and ACL files are regenerated as a whole.

Layout of a registry directory::

    REGISTRY/
      accounts/<name>.json     one per account: role, ids, topic prefix, $7$ hash, dates
      mosquitto/passwd         generated: Mosquitto's password_file
      mosquitto/acl            generated: Mosquitto's acl_file
      .lock                    serializes operators working on the same registry

The two generated files are never edited by hand or in place: every change rewrites both from
the account records (each in one atomic rename), so they always agree with the registry and a
broker that re-reads them at any moment sees a complete file. Only the hash of a password is kept;
the plain password exists in the bundle handed to the agent (mode 0600, written by
:mod:`aggregator.bundles`) and nowhere else.

A revoked account keeps its record (who, when) but leaves both generated files, so the broker
refuses it from its next reload (SIGHUP, :func:`reload_broker`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregator.errors import AggregatorError
from footfall.broker_auth import (
    AccountAcl,
    Role,
    acl_lines,
    atomic_write,
    mosquitto_hash,
    new_password,
    render_acl,
    render_passwd,
)
from footfall.contract.topics import DEFAULT_PREFIX, check_prefix
from footfall.ids import check_id

log = logging.getLogger(__name__)


class RegistryError(AggregatorError):
    """A registry operation that cannot be done; the message says why."""


class Account(BaseModel):
    """One broker account as the registry stores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Broker user name; an agent's is its agent id")
    role: Role
    topic_prefix: str = DEFAULT_PREFIX
    site: str | None = None
    spot: str | None = None
    agent: str | None = None
    password_hash: str = Field(description="Mosquitto $7$ hash; never the password")
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def acl(self) -> AccountAcl:
        return AccountAcl(self.name, self.role, self.topic_prefix, self.site, self.spot, self.agent)

    @property
    def address(self) -> str:
        return f"{self.site}/{self.spot}/{self.agent}" if self.role is Role.AGENT else "-"


@dataclass(frozen=True)
class Issued:
    """An account and its freshly made password, to be written into a bundle and forgotten."""

    account: Account
    password: str


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Registry:
    """A registry directory (created on first use)."""

    def __init__(self, root: Path, *, broker_user: str | None = None) -> None:
        """``broker_user``: the account Mosquitto drops to (``mosquitto``); when running as
        root the generated files are given to its group, mode 0640, so the broker can read
        them and nobody else can."""
        self.root = root
        self.accounts_dir = root / "accounts"
        self.broker_dir = root / "mosquitto"
        self.passwd_file = self.broker_dir / "passwd"
        self.acl_file = self.broker_dir / "acl"
        self._owner: tuple[int, int] | None = None
        if broker_user is not None:
            try:
                entry = pwd.getpwnam(broker_user)
            except KeyError:
                raise RegistryError(
                    f"no system user {broker_user!r} to give the files to"
                ) from None
            self._owner = (0 if os.geteuid() == 0 else os.geteuid(), entry.pw_gid)

    # -- locking and records ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.accounts_dir.mkdir(parents=True, exist_ok=True)
        # With a broker user the broker must traverse the root to reach mosquitto/; the account
        # records stay unreadable to it (0600).
        self.root.chmod(0o711 if self._owner else 0o700)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, name: str) -> Path:
        return self.accounts_dir / f"{name}.json"

    def _load(self, path: Path) -> Account:
        try:
            return Account.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise RegistryError(f"{path}: unreadable account record: {exc}") from None

    def accounts(self) -> list[Account]:
        """Every account, revoked ones included, by role then name."""
        if not self.accounts_dir.is_dir():
            return []
        found = [self._load(p) for p in sorted(self.accounts_dir.glob("*.json"))]
        return sorted(found, key=lambda a: (a.role.value, a.name))

    def get(self, name: str) -> Account:
        path = self._path(name)
        if not path.is_file():
            raise RegistryError(f"no account {name!r} in the registry at {self.root}")
        return self._load(path)

    def _save(self, account: Account) -> None:
        atomic_write(self._path(account.name), account.model_dump_json(indent=2) + "\n", mode=0o600)

    # -- operations --------------------------------------------------------------------------

    def provision_agent(
        self, site: str, spot: str, agent: str, *, topic_prefix: str = DEFAULT_PREFIX
    ) -> Issued:
        """A new agent account (user name = agent id). Refuses an agent id that is in use,
        and a site/spot/agent address another active agent holds."""
        try:
            for value in (site, spot, agent):
                check_id(value)
            check_prefix(topic_prefix)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        with self._locked():
            for other in self.accounts():
                if not other.active:
                    continue
                if other.name == agent:
                    raise RegistryError(
                        f"{agent!r} is already provisioned ({other.role.value} {other.address}); "
                        "rotate its password or revoke it first"
                    )
                if (other.site, other.spot, other.agent, other.topic_prefix) == (
                    site,
                    spot,
                    agent,
                    topic_prefix,
                ):
                    raise RegistryError(f"{site}/{spot}/{agent} is held by {other.name!r}")
            return self._issue(Role.AGENT, agent, topic_prefix, site, spot, agent)

    def add_service(self, role: Role, name: str, *, topic_prefix: str = DEFAULT_PREFIX) -> Issued:
        """An aggregator or operator account."""
        role = Role(role)
        if role not in (Role.AGGREGATOR, Role.OPERATOR):
            raise RegistryError(f"service accounts are aggregator or operator, not {role.value}")
        try:
            check_prefix(topic_prefix)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        with self._locked():
            existing = self._path(name)
            if existing.is_file() and self._load(existing).active:
                raise RegistryError(f"{name!r} is already provisioned; rotate or revoke it")
            return self._issue(role, name, topic_prefix, None, None, None)

    def _issue(
        self,
        role: Role,
        name: str,
        prefix: str,
        site: str | None,
        spot: str | None,
        agent: str | None,
    ) -> Issued:
        password = new_password()
        try:
            account = Account(
                name=name,
                role=role,
                topic_prefix=prefix,
                site=site,
                spot=spot,
                agent=agent,
                password_hash=mosquitto_hash(password),
                created_at=_now(),
            )
            acl_lines(account.acl)  # checks the name and ids the way the ACL needs them
        except (ValueError, ValidationError) as exc:
            raise RegistryError(str(exc).splitlines()[0]) from None
        self._save(account)
        self._render()
        log.debug("provisioned %s %s", role.value, name)
        return Issued(account, password)

    def rotate(self, name: str) -> Issued:
        """A new password for an active account; the old one stops working at the next reload."""
        with self._locked():
            account = self.get(name)
            if not account.active:
                raise RegistryError(f"{name!r} was revoked; provision it again instead")
            password = new_password()
            account = account.model_copy(
                update={"password_hash": mosquitto_hash(password), "rotated_at": _now()}
            )
            self._save(account)
            self._render()
        log.debug("rotated the password of %s", name)
        return Issued(account, password)

    def revoke(self, name: str) -> Account:
        """Remove an account from the broker's files; its record stays, marked revoked."""
        with self._locked():
            account = self.get(name)
            if not account.active:
                raise RegistryError(f"{name!r} is already revoked (at {account.revoked_at})")
            account = account.model_copy(update={"revoked_at": _now()})
            self._save(account)
            self._render()
        log.debug("revoked %s", name)
        return account

    def render(self) -> None:
        """Regenerate the password and ACL files from the records (e.g. after a restore)."""
        with self._locked():
            self._render()

    def _render(self) -> None:
        active = [a for a in self.accounts() if a.active]
        header = (
            "Generated from the fleet registry by `footfall-aggregator fleet`; do not edit.\n"
            "Anonymous clients get no access: there is no topic line outside a user block."
        )
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        self.broker_dir.chmod(0o750 if self._owner else 0o700)
        if self._owner is not None and os.geteuid() == 0:
            os.chown(self.broker_dir, *self._owner)
        # ACL first: an account that can log in already finds its ACL block in place.
        atomic_write(
            self.acl_file,
            render_acl((acl_lines(a.acl) for a in active), header=header),
            owner=self._owner,
        )
        atomic_write(
            self.passwd_file,
            render_passwd((a.name, a.password_hash) for a in active),
            owner=self._owner,
        )

    def find_agent(self, agent: str) -> Account:
        account = self.get(agent)
        if account.role is not Role.AGENT:
            raise RegistryError(f"{agent!r} is a {account.role.value} account, not an agent")
        return account


# --------------------------------------------------------------------------------------------
# Broker reload


def reload_broker(pid_file: Path) -> int:
    """SIGHUP the Mosquitto whose PID is in ``pid_file``, so it re-reads the password and ACL
    files; returns the PID. Checks the PID really is a mosquitto process first: a stale PID
    file must not make us signal some unrelated process."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read a PID from {pid_file}: {exc}") from None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        raise RegistryError(f"no process {pid} (from {pid_file}); is the broker running?") from None
    if "mosquitto" not in comm:
        raise RegistryError(f"process {pid} from {pid_file} is {comm!r}, not mosquitto")
    os.kill(pid, signal.SIGHUP)
    log.debug("sent SIGHUP to mosquitto (pid %d)", pid)
    return pid

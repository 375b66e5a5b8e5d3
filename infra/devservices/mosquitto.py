"""Mosquitto with password auth, per-agent ACL, a plain and a TLS listener, and persistence."""

from __future__ import annotations

import re
import signal
import ssl
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from footfall.broker_auth import (
    Role,
    atomic_write,
    mosquitto_hash,
    render_acl,
    render_passwd,
)
from infra.devservices.broker_users import TOPIC_PREFIX_RE, BrokerUser, default_broker_users
from infra.devservices.ca import make_test_ca
from infra.devservices.common import (
    DEFAULT_TOPIC_PREFIX,
    LOOPBACK,
    ServiceError,
    _account,
    _check_reachable,
    _chown,
    _is_root,
    _port_open,
    _read_from,
    _wait_until,
    free_ports,
    mosquitto_binaries,
    openssl_binary,
)
from infra.devservices.connack import (
    CONNACK_ACCEPTED,
    mqtt_connack,
)
from infra.devservices.service import Service


class Mosquitto(Service):
    """Mosquitto with password auth, a per-agent ACL, a plain and a TLS listener, persistence.

    Started as root it drops to user ``mosquitto`` before reading the key, password and ACL
    files, so those are chowned to that user; the persistence directory too.
    """

    name = "mosquitto"

    def __init__(
        self,
        *,
        users: Iterable[BrokerUser] | None = None,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        port: int | None = None,
        tls_port: int | None = None,
        max_queued_messages: int = 100_000,
        autosave_interval: int = 30,
        extra_config: Sequence[str] = (),
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 15.0,
    ) -> None:
        self._broker_bin, _ = mosquitto_binaries()
        openssl_binary()
        if not TOPIC_PREFIX_RE.fullmatch(topic_prefix):
            raise ValueError(f"topic prefix {topic_prefix!r} is not 1-4 plain levels")
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        self.host = LOOPBACK
        self.topic_prefix = topic_prefix
        self.max_queued_messages = max_queued_messages
        self.autosave_interval = autosave_interval
        self.extra_config = list(extra_config)
        self._users: dict[str, BrokerUser] = {}
        for user in default_broker_users() if users is None else users:
            if user.name in self._users:
                raise ValueError(f"duplicate broker user {user.name!r}")
            self._users[user.name] = user
        if port is None or tls_port is None:
            self.port, self.tls_port = free_ports(2)
        else:
            self.port, self.tls_port = port, tls_port
            self._ports_auto = False
        self.config_file = self.state_dir / "mosquitto.conf"
        self.password_file = self.state_dir / "passwd"
        self.acl_file = self.state_dir / "acl"
        self.persistence_dir = self.state_dir / "data"
        self.tls_dir = self.state_dir / "tls"
        self.ca_file = self.tls_dir / "ca.crt"
        self._account = _account("mosquitto") if _is_root() else None
        _check_reachable(self.state_dir, "mosquitto", self._account)
        self._users_written = False

    # -- users -------------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, BrokerUser]:
        return dict(self._users)

    def user(self, name: str) -> BrokerUser:
        try:
            return self._users[name]
        except KeyError:
            raise KeyError(f"no broker user {name!r}; have {sorted(self._users)}") from None

    def users_with_role(self, role: Role | str) -> list[BrokerUser]:
        return [u for u in self._users.values() if u.role == Role(role)]

    def add_users(self, users: Iterable[BrokerUser]) -> None:
        """Add (or replace) accounts; a running broker reloads them on SIGHUP and this waits
        until each new account can log in."""
        new = list(users)
        for user in new:
            self._users[user.name] = user
        if not self._users_written:
            return
        # ACL first: once a new account can log in, its ACL entries are already in place.
        self._write_acl()
        self._write_passwords()
        self._reload_and_wait(new)

    def remove_users(self, names: Iterable[str]) -> None:
        gone = [n for n in names if self._users.pop(n, None) is not None]
        if not gone or not self._users_written:
            return
        self._write_passwords()
        self._write_acl()
        if self.is_running() and self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def _reload_and_wait(self, users: Sequence[BrokerUser]) -> None:
        proc = self._proc
        if not self.is_running() or proc is None:
            return
        proc.send_signal(signal.SIGHUP)
        # SIGHUP is acknowledged by nothing but the new accounts starting to work. Signals
        # coalesce, and one that lands while the broker is mid-reload could be the one that
        # read the old files, so keep nudging until the accounts work.
        last_hup = time.monotonic()
        for user in users:

            def accepted(user: BrokerUser = user) -> bool:
                nonlocal last_hup
                if self._connack(user) == CONNACK_ACCEPTED:
                    return True
                if time.monotonic() - last_hup > 0.5:
                    proc.send_signal(signal.SIGHUP)
                    last_hup = time.monotonic()
                return False

            if not _wait_until(accepted, timeout=10, interval=0.02, alive=self.is_running):
                raise ServiceError(
                    f"mosquitto did not accept new user {user.name!r} after SIGHUP\n"
                    f"--- last lines of {self.log_file} ---\n{self.log_tail()}"
                )

    def _connack(self, user: BrokerUser, *, tls: bool = False) -> int:
        try:
            if tls:
                return mqtt_connack(
                    self.host,
                    self.tls_port,
                    user.name,
                    user.password,
                    ssl_context=self.ssl_context(),
                    timeout=2,
                )
            return mqtt_connack(self.host, self.port, user.name, user.password, timeout=2)
        except OSError:
            return -1

    # -- connection info ---------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """Client context that trusts only this broker's throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def env(self) -> dict[str, str]:
        out = {
            "MQTT_HOST": self.host,
            "MQTT_PORT": str(self.port),
            "MQTT_TLS_PORT": str(self.tls_port),
            "MQTT_CA_FILE": str(self.ca_file),
            "MQTT_TOPIC_PREFIX": self.topic_prefix,
        }
        for user in self._users.values():
            key = re.sub(r"[^A-Z0-9]", "_", user.name.upper())
            out[f"MQTT_USER_{key}"] = user.name
            out[f"MQTT_PASSWORD_{key}"] = user.password
            if user.role is Role.AGENT:
                out[f"MQTT_ADDRESS_{key}"] = f"{user.site}/{user.spot}/{user.agent}"
        return out

    # -- Service hooks -----------------------------------------------------------------------

    def _ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def _pick_ports(self) -> None:
        self.port, self.tls_port = free_ports(2)

    def _fix_owner(self, path: Path, mode: int = 0o640) -> None:
        _chown(path, self._account, mode)

    def _owner(self) -> tuple[int, int] | None:
        return (self._account.uid, self._account.gid) if self._account is not None else None

    def _write_acl(self) -> None:
        text = render_acl(
            (user.acl_lines(self.topic_prefix) for user in self._users.values()),
            header="Generated by infra/devservices; anonymous clients are refused entirely.",
        )
        atomic_write(self.acl_file, text, mode=0o640, owner=self._owner())

    def _write_passwords(self) -> None:
        # Hashed here, in Mosquitto's own $7$ format, by the code the fleet registry uses: the
        # test broker accepting these logins is what shows that code is right.
        text = render_passwd((u.name, mosquitto_hash(u.password)) for u in self._users.values())
        atomic_write(self.password_file, text, mode=0o640, owner=self._owner())

    def _prepare(self) -> None:
        self.tls_dir.mkdir(exist_ok=True)
        make_test_ca(self.tls_dir)
        self._fix_owner(self.tls_dir, 0o750)
        for name in ("server.crt", "server.key", "ca.crt"):
            self._fix_owner(self.tls_dir / name, 0o640)
        self.persistence_dir.mkdir(exist_ok=True)
        self._fix_owner(self.persistence_dir, 0o750)
        if not self._users_written:
            self._write_passwords()
            self._write_acl()
            self._users_written = True
        # Mosquitto opens the log itself, possibly after dropping privileges.
        self.log_file.touch()
        self._fix_owner(self.log_file, 0o640)
        tls = self.tls_dir
        lines = [
            "# Generated by infra/devservices",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            "persistence true",
            # The trailing slash is required: mosquitto concatenates location and file name.
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {self.autosave_interval}",
            # stdout is block-buffered when not a terminal; a file is written line by line.
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            "",
            f"listener {self.port} {self.host}",
            "protocol mqtt",
            "",
            f"listener {self.tls_port} {self.host}",
            "protocol mqtt",
            f"cafile {tls / 'ca.crt'}",
            f"certfile {tls / 'server.crt'}",
            f"keyfile {tls / 'server.key'}",
            "tls_version tlsv1.2",
            *self.extra_config,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        self._fix_owner(self.config_file, 0o640)

    def _command(self) -> list[str]:
        return [self._broker_bin, "-c", str(self.config_file)]

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        def running_line() -> bool:
            return " running" in _read_from(self.log_file, log_offset)

        if not _wait_until(
            running_line, timeout=deadline - time.monotonic(), alive=self.is_running
        ):
            return "no 'mosquitto version ... running' line in the log"
        admin = next(iter(self.users_with_role(Role.ADMIN)), None)
        probe_user = admin or next(iter(self._users.values()), None)

        def answers() -> bool:
            if probe_user is None:
                return _port_open(self.host, self.port) and _port_open(self.host, self.tls_port)
            # Real logins on both listeners prove that the password file, key and certificate
            # were readable after the privilege drop.
            return (
                self._connack(probe_user) == CONNACK_ACCEPTED
                and self._connack(probe_user, tls=True) == CONNACK_ACCEPTED
            )

        if not _wait_until(answers, timeout=deadline - time.monotonic(), alive=self.is_running):
            return f"ports {self.port}/{self.tls_port} do not accept a login"
        return None

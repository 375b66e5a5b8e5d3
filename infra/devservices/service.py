"""The base of every dev service: one real server process with its state dir, log and PID file."""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from infra.devservices.common import (
    ServiceError,
    _child_pids,
    _file_size,
    _log,
    _release_ports,
    pid_alive,
    tail,
)

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

"""`python -m infra.devservices up|down`: services for local work, connection settings as KEY=value."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from infra.devservices.common import (
    SERVICE_NAMES,
    MissingBinaryError,
    ServiceError,
    _child_pids,
    _cmdline,
    _log,
    pid_alive,
)
from infra.devservices.stack import Services

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
        registry=Path(args.registry) if args.registry else None,
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
    up.add_argument(
        "--registry",
        help="fleet registry directory: the broker is infra/mosquitto/mosquitto.conf (TLS only) "
        "on the registry's password and ACL files, reloaded by `fleet ... --reload-pid-file "
        "$MQTT_PID_FILE`; without it, built-in test accounts",
    )
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

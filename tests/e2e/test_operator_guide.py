"""The operator's guide, section 9, run as written: its shell blocks marked ``<!-- guide-test
-->`` are read from docs/operator-guide.md and run in order in one bash, so the guide and what
is tested cannot drift apart. They start ``infra/dev-services`` on a fresh registry (the
deployment's Mosquitto configuration on loopback), provision accounts, run an aggregator and an
agent's delivery side, push a configuration and one the agent rejects, and stop everything.

The console scripts are this checkout's code (a ``footfall-aggregator`` and ``footfall-agent``
on PATH that run ``python -m``), and no ``FOOTFALL_*`` variable of the caller leaks in."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.devservices.common import MissingBinaryError, mosquitto_binaries, openssl_binary
from tests.services import unavailable

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "operator-guide.md"
_BLOCK = re.compile(r"^<!-- guide-test -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def guide_blocks(text: str) -> list[str]:
    """The shell blocks of the guide marked for this test, in order."""
    return [match.group(1) for match in _BLOCK.finditer(text)]


def test_the_guide_has_its_tested_blocks() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = guide_blocks(text)
    # Every marker is followed by a sh block (a marker on anything else would be skipped).
    assert blocks and len(blocks) == text.count("<!-- guide-test -->")
    assert 'infra/dev-services" up --only mosquitto --registry' in blocks[0]
    assert 'dev-services" down' in blocks[-1]


@pytest.fixture
def traversable_tmp() -> Iterator[Path]:
    """A temporary directory under /tmp that the broker's user may traverse (pytest's own
    tmp_path is 0700 under /tmp/pytest-of-root)."""
    path = Path(tempfile.mkdtemp(prefix="operator-guide-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _console_scripts(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for script, module in (("footfall-aggregator", "aggregator"), ("footfall-agent", "edge_agent")):
        path = bin_dir / script
        path.write_text(
            f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m {module} "$@"\n'
        )
        path.chmod(0o755)


def test_operator_guide_section_9_runs_as_written(traversable_tmp: Path) -> None:
    try:
        mosquitto_binaries()
        openssl_binary()
    except MissingBinaryError as exc:
        unavailable(str(exc))
    bin_dir = traversable_tmp / "bin"
    _console_scripts(bin_dir)
    scratch = traversable_tmp / "tmp"  # the guide's mktemp -d lands here
    scratch.mkdir()
    scratch.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTFALL_")}
    env |= {
        "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
        "TMPDIR": str(scratch),
        "FOOTFALL_PYTHON": sys.executable,  # the checkout's infra/dev-services looks for .venv
    }
    env.pop("PYTHONPATH", None)
    script = "set -euo pipefail\nset -x\n" + "\n".join(guide_blocks(GUIDE.read_text("utf-8")))
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: whatever it leaves running is ours
    )
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    finally:
        _clean_up(proc.pid, scratch, env)
    work = next(scratch.iterdir(), None)
    logs = (
        "".join(
            f"\n--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(work.glob("*.log"))
        )
        if work is not None
        else ""
    )
    assert proc.returncode == 0, output + logs
    assert work is not None

    assert "cam-001: applied; configuration in effect: 2026-06-01.1" in output, output
    assert "cam-001: REJECTED 2026-06-01.2: tracker: low_score (0.2)" in output, output
    assert "still running 2026-06-01.1" in output
    assert "push-config exit status 3" in output
    assert "connected to 127.0.0.1:" in output and "as 'cam-001'" in output
    fleet_rows = [line for line in output.splitlines() if "│ cam-001 │" in line]
    assert fleet_rows and "│ online │" in fleet_rows[-1], output
    assert "2026-06-01.1" in fleet_rows[-1]
    agent_log = (work / "agent.log").read_text()
    assert "restoring configuration 2026-06-01.1 on the config topic" in agent_log, agent_log
    restarted = (work / "agent-restarted.log").read_text()
    assert "remote configuration 2026-06-01.1 applied" in restarted
    assert "rejected" not in restarted, restarted
    assert "stopped: devservices up" in output


def _clean_up(group: int, scratch: Path, env: dict[str, str]) -> None:
    """After a failure part way, stop what the guide started: the services of its state dir
    through `down`, then anything left in the script's own process group."""
    for state in scratch.glob("*/state"):
        if (state / "devservices.pid").exists():
            subprocess.run(
                [str(REPO / "infra" / "dev-services"), "down", "--state-dir", str(state)],
                env=env,
                capture_output=True,
                timeout=90,
                check=False,
            )
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGTERM)

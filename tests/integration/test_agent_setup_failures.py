"""A real agent process whose broker files are missing, against a real Mosquitto: it stops with one
line and exit 1 (so that systemd restarts it), and once the file is installed the restarted agent
delivers everything - also when the file goes missing while it runs.

The agent is ``tests.integration.agent_driver``: synthetic events through the real delivery
wiring, resuming from what its outbox already accepted, as a restarted camera agent would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract.topics import AgentAddress
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.integration.test_delivery_outages import Collector
from tests.services import ServiceFactory

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
EVENTS = 600
SEED = 20260518


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def _config(path: Path, broker: ds.Mosquitto, ca_file: Path, password_file: Path) -> None:
    path.write_text(
        f"""
site = "{ADDRESS.site}"
spot = "{ADDRESS.spot}"
agent = "{ADDRESS.agent}"
data_dir = "{path.parent / "data"}"

[outbox]
synchronous = "normal"

[delivery]
shutdown_drain_seconds = 5.0
confirm = "broker"  # a bare subscriber, no aggregator sending receipts

[mqtt]
host = "{broker.host}"
port = {broker.tls_port}
ca_file = "{ca_file}"
username = "agent-1"
password_file = "{password_file}"
reconnect_min_seconds = 0.1
reconnect_max_seconds = 0.5
""",
        encoding="utf-8",
    )


def _agent(config: Path, log: Path, rate: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.agent_driver",
            str(config),
            f"--events={EVENTS}",
            f"--seed={SEED}",
            f"--rate={rate}",
            "--batch=5",
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log.open("w"),
        stderr=subprocess.PIPE,
        text=True,
    )


def _ends_with_one_line(proc: subprocess.Popen[str], line: str, timeout: float) -> None:
    """Exit 1, and stderr's last line is ``line``; no traceback anywhere."""
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert err.splitlines()[-1] == f"error: {line}", err


def test_missing_broker_files_stop_the_agent_and_a_restart_after_the_fix_delivers(
    mosquitto_factory: ServiceFactory[ds.Mosquitto], tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    produced = {str(e.event_id) for e, _ in synthetic_events(EVENTS, seed=SEED, address=ADDRESS)}
    base = f"{broker.topic_prefix}/{ADDRESS.site}/{ADDRESS.spot}/{ADDRESS.agent}"
    collector = Collector(broker, broker.user("aggregator"), [f"{base}/events"])
    etc = tmp_path / "etc"
    etc.mkdir()
    ca_file, password_file = etc / "ca.crt", etc / "mqtt.password"
    config = etc / "agent.toml"
    _config(config, broker, ca_file, password_file)
    password_file.write_text(broker.user("agent-1").password + "\n", encoding="utf-8")
    procs: list[subprocess.Popen[str]] = []
    try:
        wait_for(lambda: collector.connects == 1, "the collector to connect", 10)

        # 1. The CA file is not installed: the agent stops at once, before its outbox exists.
        started = time.monotonic()
        procs.append(_agent(config, tmp_path / "run-1.log", rate=200))
        _ends_with_one_line(
            procs[-1], f"mqtt.ca_file {ca_file}: cannot read it: No such file or directory", 30
        )
        assert time.monotonic() - started < 20
        assert not outbox_path(tmp_path / "etc" / "data").exists()

        # 2. Installed: the restarted agent delivers. 3. While it runs the password file goes
        # missing and the broker restarts: the next connection attempt ends the agent.
        shutil.copy(broker.ca_file, ca_file)
        procs.append(_agent(config, tmp_path / "run-2.log", rate=100))
        wait_for(lambda: collector.unique() >= 150, "the first events", 30)
        password_file.unlink()
        broker.stop()
        broker.start()
        _ends_with_one_line(
            procs[-1],
            f"mqtt.password_file {password_file}: cannot read it: No such file or directory",
            60,
        )
        with Outbox(outbox_path(etc / "data")) as box:
            left = box.depth()
            accepted = box.counters().events_accepted
        assert 0 < accepted < EVENTS, "the fatal error must stop the producer"
        assert left > 0, "what was not sent waits in the outbox"

        # 4. The file is back: the restarted agent produces the rest and sends everything.
        password_file.write_text(broker.user("agent-1").password + "\n", encoding="utf-8")
        procs.append(_agent(config, tmp_path / "run-3.log", rate=500))
        wait_for(lambda: collector.unique() >= EVENTS, f"all {EVENTS} events", 60)
        procs[-1].send_signal(signal.SIGTERM)
        _out, err = procs[-1].communicate(timeout=60)
        assert procs[-1].returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        collector.close()
    assert set(collector.events) == produced
    with Outbox(outbox_path(etc / "data")) as box:
        status = box.status()
    assert (status.depth, status.counters.events_accepted) == (0, EVENTS)

"""``footfall-aggregator``: the commands over the library, with exact texts for the errors."""

import json
import random
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aggregator.cli import app
from aggregator.store import EventStore, StatusRecord
from aggregator.store.migrations import LATEST_VERSION
from footfall.contract import AgentState, Channel
from footfall.contract.examples import example_status, random_events

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FOOTFALL_AGGREGATOR__STORE__URL", "FOOTFALL_AGGREGATOR__STORE__PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _error(result: Result) -> str:
    """The last line the command wrote to stderr (logging may come before it)."""
    stderr: str = result.stderr
    return stderr.strip().splitlines()[-1]


def test_replay_prints_counts(tmp_path: Path) -> None:
    events = random_events(5, rng=random.Random(1))
    path = tmp_path / "clip.jsonl"
    path.write_bytes(
        b"".join(
            line + b"\n" for line in [e.to_json() for e in events] + [b"{", events[0].to_json()]
        )
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = runner.invoke(app, ["replay", str(path), "--store", url])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "files: 1\nlines: 7\nstored: 5\nduplicates: 1\nrejected: 1\n  invalid: 1\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["replay", "{tmp}/missing.jsonl", "--store", "sqlite:///{tmp}/s.db"], 1,
         "error: {tmp}/missing.jsonl: file not found"),
        (["fleet", "--store", "sqlite:///{tmp}/nope.db"], 1,
         "error: {tmp}/nope.db: no such database file; check store.url (or --store), or "
         "create the store with `footfall-aggregator db upgrade`"),
        (["dead-letters", "--store", "sqlite:///{tmp}/nope.db"], 1,
         "error: {tmp}/nope.db: no such database file; check store.url (or --store), or "
         "create the store with `footfall-aggregator db upgrade`"),
        (["db", "status", "--store", "sqlite:///{tmp}/nope.db"], 1,
         "error: {tmp}/nope.db: no such database file; check store.url (or --store), or "
         "create the store with `footfall-aggregator db upgrade`"),
        (["fleet", "--store", "postgresql://u:secret@db/x"], 2,
         "error: --store: must not contain a password; set store.password through the "
         "environment or store.password_file"),
        (["fleet", "--store", "mysql://db/x"], 2,
         "error: --store: must start with sqlite: or postgresql"),
        (["fleet", "--silent-after", "soon"], 2,
         "error: --silent-after: 'soon' is not a duration (use e.g. 90s, 5m, 2h)"),
        (["run", "--config", "{tmp}/no-mqtt.toml"], 1,
         "error: the configuration has no [mqtt] section; the ingest service needs one"),
        (["run", "--config", "{tmp}/closed-port.toml"], 1,
         "error: cannot connect to the broker at 127.0.0.1:{port}: [Errno 111] Connection refused; "
         "check mqtt.host and mqtt.port, and that the broker is running"),
    ],
    ids=["replay-missing", "fleet-no-db", "dead-letters-no-db", "db-status-no-db",
         "password-in-url", "unknown-backend", "bad-duration", "run-without-mqtt",
         "broker-unreachable"],
)  # fmt: skip
def test_errors_are_one_line_with_an_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    port = _free_port()
    store = f"sqlite:///{tmp_path}/s.db"
    (tmp_path / "no-mqtt.toml").write_text(f'[store]\nurl = "{store}"\n')
    (tmp_path / "closed-port.toml").write_text(
        f"[mqtt]\nport = {port}\ntls = false\n[ingest]\nconnect_timeout_seconds = 0.5\n"
        f'[store]\nurl = "{store}"\n'
    )
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code, result.output
    assert _error(result) == message.format(tmp=tmp_path, port=port)
    assert not (tmp_path / "nope.db").exists()


def test_config_that_cannot_fill_a_batch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agg.toml"
    path.write_text("[ingest]\nbatch_max_events = 2000\nreceive_maximum = 100\n")
    result = runner.invoke(app, ["validate-config", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output == (
        f"{path}: invalid configuration\n"
        "  ingest: receive_maximum must be >= batch_max_events, or a batch can never fill, "
        "got {'batch_max_events': 2000, 'receive_maximum': 100}\n"
    )


def test_db_status_and_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "applied 1: events, dead letters, agents and their status history\n"
        "applied 2: log of nightly workbook deliveries\n"
        "applied 3: content hash of each event, to report conflicting duplicates\n"
        "applied 4: the agent mode that counted each event, and why its face is unknown\n"
        "applied 5: agents' video source state and error; the time of the heartbeat their "
        "pending counts come from\n"
        "applied 6: sites and their time zones, as the configuration declares them\n"
        "applied 7: site calibrations of the classifier, per spot\n"
    )
    assert runner.invoke(app, ["db", "upgrade", "--store", url]).stdout == "already up to date\n"
    result = runner.invoke(app, ["db", "status", "--store", url])
    latest = LATEST_VERSION
    assert result.stdout == (
        f"store: {url}\nschema version: {latest} (this software: {latest})\nup to date\n"
    )


def test_fleet_lists_agents_and_exits_3_when_one_is_silent_or_offline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    store = EventStore.open(url)
    now = datetime.now(UTC)
    records = [
        StatusRecord(Channel.HEARTBEAT, example_status(agent="cam-1", sent_at=now), now),
        StatusRecord(
            Channel.HEARTBEAT,
            example_status(agent="cam-2", spot="south", sent_at=now - timedelta(minutes=10)),
            now - timedelta(minutes=10),
        ),
        StatusRecord(
            Channel.STATUS,
            example_status(agent="cam-3", spot="west", state=AgentState.OFFLINE, sent_at=now),
            now,
        ),
    ]
    store.record_statuses(records)
    store.close()
    result = runner.invoke(app, ["fleet", "--store", url, "--silent-after", "5m"])
    assert result.exit_code == 3
    assert "cam-1" in result.stdout and "cam-3" in result.stdout
    assert _error(result) == (
        "2 of 3 not counting: site-a/south/cam-2 (SILENT), site-a/west/cam-3 (offline)"
    )
    relaxed = runner.invoke(app, ["fleet", "--store", url, "--silent-after", "1h"])
    assert relaxed.exit_code == 3, relaxed.output
    assert _error(relaxed) == "1 of 3 not counting: site-a/west/cam-3 (offline)"
    back = StatusRecord(
        Channel.HEARTBEAT,
        example_status(agent="cam-3", spot="west", sent_at=now + timedelta(seconds=1)),
        now,
    )
    store = EventStore.open(url)
    store.record_statuses([back])
    store.close()
    relaxed = runner.invoke(app, ["fleet", "--store", url, "--silent-after", "1h"])
    assert relaxed.exit_code == 0, relaxed.output
    empty = runner.invoke(app, ["fleet", "--store", url, "--site", "elsewhere"])
    assert (empty.exit_code, empty.stdout) == (0, "no agent has reported yet for site elsewhere\n")


def test_dead_letters_lists_counts_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"x": 1}\n[1, 2]\n' + json.dumps({"a": "\u0000"}).encode() + b"\n")
    url = f"sqlite:///{tmp_path / 'dl.db'}"
    assert runner.invoke(app, ["replay", str(path), "--store", url]).exit_code == 0
    result = runner.invoke(app, ["dead-letters", "--store", url, "-n", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "3 dead letters: invalid 3"
    assert "replay:bad.jsonl:3" in result.stdout and "replay:bad.jsonl:1" not in result.stdout

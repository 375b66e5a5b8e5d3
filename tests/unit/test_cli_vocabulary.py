"""One vocabulary across both command lines: the agent configuration is ``--config/-c`` in
every ``footfall-agent`` command (the positional form warns for one release), accounts are
``--agent`` or ``--user`` (the old spellings warn), ``--json`` output parses, and the help
shows no ``<bool>`` or ``<list[...]>``."""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from aggregator.cli import app as aggregator_app
from aggregator.store import EventStore, StatusRecord
from edge_agent.cli import app as agent_app
from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract import Channel
from footfall.contract.examples import example_status

runner = CliRunner()

WARN_CONFIG = (
    "warning: a positional CONFIG is deprecated, use --config CONFIG; the old spelling goes in "
    "the next release\n"
)
MISSING = "{tmp}/nope.toml: invalid configuration\n  file not found\n"

CONFIG_COMMANDS = [
    (agent_app, ["validate-config"]),
    (agent_app, ["check-broker"]),
    (agent_app, ["deliver"]),
    (agent_app, ["run"]),
    (aggregator_app, ["validate-config"]),
]
CONFIG_IDS = [
    f"{'agent' if app is agent_app else 'aggregator'} {' '.join(c)}" for app, c in CONFIG_COMMANDS
]


@pytest.mark.parametrize(("app", "command"), CONFIG_COMMANDS, ids=CONFIG_IDS)
@pytest.mark.parametrize(
    ("spelling", "stderr"),
    [
        (["--config", "{tmp}/nope.toml"], MISSING),
        (["-c", "{tmp}/nope.toml"], MISSING),
        (["{tmp}/nope.toml"], WARN_CONFIG + MISSING),
        (
            ["--config", "{tmp}/nope.toml", "{tmp}/nope.toml"],
            "error: give --config CONFIG only: a positional CONFIG is its deprecated spelling\n",
        ),
        ([], "error: missing option --config CONFIG\n"),
    ],
    ids=["long", "short", "old-positional", "both", "neither"],
)
def test_the_config_is_one_option(
    tmp_path: Path, app: typer.Typer, command: list[str], spelling: list[str], stderr: str
) -> None:
    result = runner.invoke(app, [*command, *(s.format(tmp=tmp_path) for s in spelling)])
    assert (result.exit_code, result.stderr) == (2, stderr.format(tmp=tmp_path))


WARN_NAME = (
    "warning: a positional NAME is deprecated, use --agent NAME or --user NAME; the old "
    "spelling goes in the next release\n"
)
WARN_USER = (
    "warning: --name NAME is deprecated, use --user NAME; the old spelling goes in the next "
    "release\n"
)


def _fleet(tmp_path: Path, *args: str) -> list[str]:
    return ["fleet", *args, "--registry", str(tmp_path / "reg")]


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    """A registry with the agent cam-1 and the operator ops."""
    host = ("--broker-host", "127.0.0.1")
    provision = _fleet(tmp_path, "provision", "--site", "s", "--spot", "p", "--agent", "cam-1")
    made = runner.invoke(aggregator_app, [*provision, *host, "--out", str(tmp_path / "b1")])
    assert made.exit_code == 0, made.output
    add = _fleet(tmp_path, "add-user", "--role", "operator", "--user", "ops", *host)
    made = runner.invoke(aggregator_app, [*add, "--out", str(tmp_path / "b2")])
    assert (made.exit_code, made.stderr) == (0, ""), made.output
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "stderr", "stdout_starts"),
    [
        (["revoke", "--agent", "cam-1"], 0, "", "revoked cam-1"),
        (["revoke", "--user", "ops"], 0, "", "revoked ops"),
        (["revoke", "cam-1"], 0, WARN_NAME, "revoked cam-1"),
        (
            ["revoke", "--agent", "ops"],
            2,
            "error: --agent ops: a operator account; use --user ops\n",
            "",
        ),
        (
            ["revoke", "--user", "cam-1"],
            2,
            "error: --user cam-1: an agent account; use --agent cam-1\n",
            "",
        ),
        (["revoke"], 2, "error: give one of --agent NAME or --user NAME\n", ""),
        (
            ["revoke", "--agent", "cam-1", "--user", "ops"],
            2,
            "error: give one of --agent NAME or --user NAME\n",
            "",
        ),
        (["rotate", "--agent", "cam-1", "--broker-host", "h"], 0, "", "new password for cam-1"),
        (["rotate", "ops", "--broker-host", "h"], 0, WARN_NAME, "new password for ops"),
        (
            ["add-user", "--role", "aggregator", "--name", "agg", "--broker-host", "h"],
            0,
            WARN_USER,
            "provisioned aggregator agg",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_accounts_are_named_by_kind(
    accounts: Path, args: list[str], code: int, stderr: str, stdout_starts: str
) -> None:
    out = ["--out", str(accounts / "out")] if args[0] != "revoke" else []
    result = runner.invoke(aggregator_app, [*_fleet(accounts, *args), *out])
    assert (result.exit_code, result.stderr) == (code, stderr)
    assert result.stdout.startswith(stdout_starts)


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = EventStore.open(url)
    now = datetime.now(UTC)
    store.record_statuses(
        [StatusRecord(Channel.HEARTBEAT, example_status(agent="cam-1", sent_at=now), now)]
    )
    store.close()
    (tmp_path / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    replayed = runner.invoke(
        aggregator_app, ["replay", str(tmp_path / "bad.jsonl"), "--store", url]
    )
    assert replayed.exit_code == 0, replayed.output
    return url


def _outbox(tmp_path: Path) -> None:
    with Outbox(outbox_path(tmp_path)):
        pass


@pytest.mark.parametrize(
    ("app", "args", "check"),
    [
        (aggregator_app, ["fleet", "--store", "{url}"], lambda v: v[0]["agent"] == "cam-1"),
        (aggregator_app, ["deliveries", "--store", "{url}"], lambda v: v == []),
        (
            aggregator_app,
            ["dead-letters", "--store", "{url}"],
            lambda v: v["total"] == 1 and v["rows"][0]["reason"] == v["reasons"].popitem()[0],
        ),
        (
            aggregator_app,
            ["db", "status", "--store", "{url}"],
            lambda v: v["up_to_date"] and v["schema_version"] == v["software_version"],
        ),
        (
            aggregator_app,
            ["fleet", "list-provisioned", "--registry", "{tmp}"],
            lambda v: v == [],
        ),
        (
            agent_app,
            ["models", "list", "--models-dir", "{tmp}"],
            lambda v: v and all(row["found in"] for row in v) and "licence" in v[0],
        ),
        (
            agent_app,
            ["outbox", "status", "--data-dir", "{tmp}"],
            lambda v: v["depth"] == 0,
        ),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None,
)
def test_json_output_parses(
    tmp_path: Path, app: typer.Typer, args: list[str], check: object
) -> None:
    url = _store(tmp_path)
    _outbox(tmp_path)
    result = runner.invoke(app, [*(a.format(tmp=tmp_path, url=url) for a in args), "--json"])
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert callable(check) and check(value), value


def _walk(command: object) -> list[object]:
    found = [command]
    for sub in getattr(command, "commands", {}).values():
        found += _walk(sub)
    return found


@pytest.mark.parametrize("app", [agent_app, aggregator_app], ids=["agent", "aggregator"])
def test_help_placeholders_are_readable(app: typer.Typer) -> None:
    for command in _walk(get_command(app)):
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name != "option":
                continue
            assert param.metavar is not None, (command, param.name)
            assert "list[" not in param.metavar and "bool" not in param.metavar
            assert "%" not in param.metavar and "range" not in param.metavar
    result = runner.invoke(app, ["--help"])
    assert "<bool>" not in result.stdout


@pytest.mark.parametrize(
    ("app", "command"),
    [
        *CONFIG_COMMANDS,
        (aggregator_app, ["fleet", "revoke"]),
        (aggregator_app, ["fleet", "rotate"]),
    ],
)
def test_deprecated_positionals_are_not_in_the_usage(app: typer.Typer, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
    assert usage.split()[-1] == "[OPTIONS]", usage


def test_db_upgrade_does_not_log_what_it_prints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new store's migrations are not news, and db upgrade prints what it applied."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with caplog.at_level(logging.INFO, logger="aggregator.store.migrations"):
        result = runner.invoke(aggregator_app, ["db", "upgrade", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("applied 1: ")
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


def test_process_json_is_the_summary_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline itself is not what this checks: a stand-in returns one clip's result."""
    import edge_agent.process as process
    from edge_agent.clips import ClipSpec
    from footfall.contract import Direction

    clip = tmp_path / "door.mp4"
    clip.write_bytes(b"")

    def fake(specs: list[ClipSpec], *_args: object, **_kwargs: object) -> list[object]:
        return [
            process.ClipResult(
                specs[0],
                frames=250,
                video_seconds=10.0,
                wall_seconds=5.0,
                people=3,
                directions={Direction.IN: 2, Direction.OUT: 1},
            )
        ]

    monkeypatch.setattr(process, "process_clips", fake)
    args = ["process", "--out", str(tmp_path / "out"), "--clip", str(clip), "--site", "s"]
    args += ["--spot", "p", "--start", "2026-05-01T09:00:00+02:00", "--json"]
    result = runner.invoke(agent_app, args)
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["clip"], row["site/spot"], row["people"], row["in"], row["out"]) == (
        "door.mp4",
        "s/p",
        "3",
        "2",
        "1",
    )
    assert (row["x real time"], row["status"]) == ("2.0", "ok")


@pytest.mark.parametrize(
    ("spelling", "stderr"),
    [
        ("--models-dir", ""),
        (
            "--models",
            "warning: --models is deprecated, use --models-dir; the old spelling goes in the next "
            "release\n",
        ),
    ],
)
def test_eval_mot_models_dir(tmp_path: Path, spelling: str, stderr: str) -> None:
    """eval mot spells the model folder as every other command; the clip check then ends it."""
    args = ["eval", "mot", "--clip", str(tmp_path / "none.mp4"), spelling, str(tmp_path)]
    result = runner.invoke(agent_app, args)
    assert (result.exit_code, result.stderr) == (
        2,
        f"{stderr}error: clip {tmp_path / 'none.mp4'} not found: give the path of a video file\n",
    )

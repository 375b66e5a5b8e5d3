"""``footfall-aggregator``: a missing or unreadable file, a missing credential, an unreachable
service or a forbidden path is one line naming the thing and what to do, and a non-zero exit; a
traceback only with ``--debug``.

Tests run as root, where ``chmod 000`` does not stop a read: a directory stands in for an
unreadable file, and a path under ``/proc`` (where nothing can be created) for a forbidden one.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator import config as aggregator_config
from aggregator.cli import app
from aggregator.store import EventStore, StatusRecord
from footfall.contract import Channel
from footfall.contract.examples import example_status

runner = CliRunner()

FORBIDDEN = "/proc/forbidden"
NO_FILE = "No such file or directory"
STORE = '[store]\nurl = "sqlite:///{tmp}/f.db"\n'
CLOSED_BROKER = '[mqtt]\nhost = "127.0.0.1"\nport = 1\ntls = false\n'
TLS_BROKER = '[mqtt]\nhost = "127.0.0.1"\nport = 1\nca_file = "{tmp}/ca.crt"\n'
S3 = '[s3]\nbucket = "reports"\nendpoint_url = "http://127.0.0.1:1"\naccess_key_id = "AK"\n'
SECRET_FILE = 'secret_access_key_file = "{tmp}/s3.secret"\n'
DELIVERY = "[delivery]\nattempts = 1\nretry_delay_seconds = 0\n"
SITE = '[[sites]]\nid = "north-mall"\n'
PROVISION = ["fleet", "provision", "--registry", "{tmp}/reg", "--site", "s", "--spot", "p"]
PUSH = ["fleet", "push-config", "--agent", "a", "--site", "s", "--spot", "p", "--clear"]
MISSING_SECRET = (
    "error: s3.access_key_id is set but there is no secret key: set "
    "FOOTFALL_AGGREGATOR__S3__SECRET_ACCESS_KEY or s3.secret_access_key_file\n"
)


def _cannot_write(setting: str, path: str) -> str:
    return (
        f"error: {setting} {path}: cannot write in /proc: {NO_FILE}; set {setting} to a place "
        "this user may write\n"
    )


# Each row: files to create ({tmp} is the test's folder; "DIR" makes a directory), the arguments,
# the exit code and stderr, exactly. A store with no events is at {tmp}/f.db.
CASES: list[tuple[str, dict[str, str], list[str], int, str]] = [
    (
        "validate-config-missing-file",
        {},
        ["validate-config", "--config", "{tmp}/nope.toml"],
        2,
        "{tmp}/nope.toml: invalid configuration\n  file not found\n",
    ),
    (
        "validate-config-unreadable-file",
        {"agg.toml": "DIR"},
        ["validate-config", "--config", "{tmp}/agg.toml"],
        2,
        "{tmp}/agg.toml: invalid configuration\n  is a directory, not a TOML file\n",
    ),
    (
        "validate-config-missing-broker-files",
        {"agg.toml": STORE + TLS_BROKER + 'username = "u"\npassword_file = "{tmp}/pw"\n'},
        ["validate-config", "--config", "{tmp}/agg.toml"],
        2,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n"
        f"error: mqtt.password_file {{tmp}}/pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "validate-config-forbidden-store",
        {"agg.toml": f'[store]\nurl = "sqlite:///{FORBIDDEN}/f.db"\n'},
        ["validate-config", "--config", "{tmp}/agg.toml"],
        2,
        _cannot_write("store.url", f"{FORBIDDEN}/f.db"),
    ),
    (
        "validate-config-unreadable-store-password-file",
        {"agg.toml": STORE + 'password_file = "{tmp}/db.pw"\n', "db.pw": "DIR"},
        ["validate-config", "--config", "{tmp}/agg.toml"],
        2,
        "error: store.password_file {tmp}/db.pw: cannot read it: Is a directory\n",
    ),
    (
        "validate-config-delivery-files",
        {
            "agg.toml": STORE + S3 + DELIVERY + f'work_dir = "{FORBIDDEN}/work"\n'
            '[delivery.smtp]\nhost = "mail"\nsender = "r@example.org"\n'
            'password_file = "{tmp}/smtp.pw"\n'
        },
        ["validate-config", "--config", "{tmp}/agg.toml"],
        2,
        MISSING_SECRET
        + _cannot_write("delivery.work_dir", f"{FORBIDDEN}/work")
        + f"error: delivery.smtp.password_file {{tmp}}/smtp.pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "run-missing-ca-file",
        {"agg.toml": '[store]\nurl = "sqlite:///{tmp}/run.db"\n' + TLS_BROKER},
        ["run", "--config", "{tmp}/agg.toml"],
        1,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n",
    ),
    (
        "run-missing-password-file",
        {
            "agg.toml": '[store]\nurl = "sqlite:///{tmp}/run.db"\n'
            + CLOSED_BROKER
            + 'username = "u"\npassword_file = "{tmp}/pw"\n'
        },
        ["run", "--config", "{tmp}/agg.toml"],
        1,
        f"error: mqtt.password_file {{tmp}}/pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "run-forbidden-store",
        {"agg.toml": f'[store]\nurl = "sqlite:///{FORBIDDEN}/f.db"\n' + CLOSED_BROKER},
        ["run", "--config", "{tmp}/agg.toml"],
        1,
        _cannot_write("store.url", f"{FORBIDDEN}/f.db"),
    ),
    (
        "run-unreachable-broker",
        {
            "agg.toml": STORE
            + CLOSED_BROKER
            + "[ingest]\nconnect_timeout_seconds = 0.2\ncommit_process = false\n"
        },
        ["run", "--config", "{tmp}/agg.toml"],
        1,
        "error: cannot connect to the broker at 127.0.0.1:1: [Errno 111] Connection refused; "
        "check mqtt.host and mqtt.port, and that the broker is running\n",
    ),
    (
        "replay-missing-file",
        {},
        ["replay", "{tmp}/events.jsonl", "--store", "sqlite:///{tmp}/f.db"],
        1,
        "error: {tmp}/events.jsonl: file not found\n",
    ),
    (
        "replay-forbidden-store",
        {"events.jsonl": ""},
        ["replay", "{tmp}/events.jsonl", "--store", f"sqlite:///{FORBIDDEN}/f.db"],
        1,
        _cannot_write("store.url", f"{FORBIDDEN}/f.db"),
    ),
    (
        "replay-unreadable-store-password-file",
        {"events.jsonl": "", "agg.toml": STORE + 'password_file = "{tmp}/db.pw"\n'},
        ["replay", "{tmp}/events.jsonl", "--config", "{tmp}/agg.toml"],
        1,
        f"error: store.password_file {{tmp}}/db.pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "db-upgrade-forbidden-store",
        {},
        ["db", "upgrade", "--store", f"sqlite:///{FORBIDDEN}/f.db"],
        1,
        _cannot_write("store.url", f"{FORBIDDEN}/f.db"),
    ),
    (
        "dead-letters-missing-store",
        {},
        ["dead-letters", "--store", "sqlite:///{tmp}/nope.db"],
        1,
        "error: {tmp}/nope.db: no such database file; check store.url (or --store), or create "
        "the store with `footfall-aggregator db upgrade`\n",
    ),
    (
        "db-status-unreachable-database",
        {},
        ["db", "status", "--store", "postgresql+psycopg://u@127.0.0.1:1/db"],
        1,
        "error: cannot open postgresql+psycopg://u@127.0.0.1:1/db: connection failed: connection "
        'to server at "127.0.0.1", port 1 failed: Connection refused; check store.url (or '
        "--store), the password and that the database is running\n",
    ),
    (
        "report-unknown-site",
        {"agg.toml": STORE + SITE},
        ["report", "--site", "nosuch", "--out", "{tmp}/r.xlsx", "--config", "{tmp}/agg.toml"],
        1,
        "error: --site nosuch: no such site in the configuration or the store (known: "
        "north-mall)\n",
    ),
    (
        "report-forbidden-out",
        {"agg.toml": STORE + SITE},
        [
            *("report", "--site", "north-mall", "--config", "{tmp}/agg.toml"),
            *("--out", f"{FORBIDDEN}/r.xlsx"),
        ],
        1,
        _cannot_write("--out", f"{FORBIDDEN}/r.xlsx"),
    ),
    (
        "report-out-is-a-directory",
        {"agg.toml": STORE + SITE, "reports": "DIR"},
        ["report", "--site", "north-mall", "--config", "{tmp}/agg.toml", "--out", "{tmp}/reports"],
        1,
        "error: --out {tmp}/reports: is a directory; give the name of a file in it\n",
    ),
    (
        "deliver-missing-s3-secret",
        {"agg.toml": STORE + S3 + DELIVERY + SITE},
        ["deliver", "--config", "{tmp}/agg.toml"],
        1,
        MISSING_SECRET,
    ),
    (
        "deliver-unreadable-s3-secret-file",
        {"agg.toml": STORE + S3 + SECRET_FILE + DELIVERY + SITE, "s3.secret": "DIR"},
        ["deliver", "--config", "{tmp}/agg.toml"],
        1,
        "error: s3.secret_access_key_file {tmp}/s3.secret: cannot read it: Is a directory\n",
    ),
    (
        "deliver-forbidden-work-dir",
        {
            "agg.toml": STORE
            + S3
            + SECRET_FILE
            + DELIVERY
            + f'work_dir = "{FORBIDDEN}/w"\n'
            + SITE,
            "s3.secret": "SK\n",
        },
        ["deliver", "--config", "{tmp}/agg.toml"],
        1,
        _cannot_write("delivery.work_dir", f"{FORBIDDEN}/w"),
    ),
    (
        "deliveries-missing-store",
        {},
        ["deliveries", "--store", "sqlite:///{tmp}/nope.db"],
        1,
        "error: {tmp}/nope.db: no such database file; check store.url (or --store), or create "
        "the store with `footfall-aggregator db upgrade`\n",
    ),
    (
        "fleet-provision-forbidden-out",
        {},
        [*PROVISION, "--agent", "a", "--broker-host", "h", "--out", f"{FORBIDDEN}/b"],
        1,
        _cannot_write("--out", f"{FORBIDDEN}/b"),
    ),
    (
        "fleet-provision-missing-ca",
        {},
        [*PROVISION, "--agent", "a", "--broker-host", "h", "--ca", "{tmp}/ca.crt"],
        2,
        "error: --ca {tmp}/ca.crt: file not found\n",
    ),
    (
        "fleet-add-user-forbidden-out",
        {},
        [
            *("fleet", "add-user", "--registry", "{tmp}/reg", "--role", "operator"),
            *("--user", "ops", "--broker-host", "h", "--out", f"{FORBIDDEN}/b"),
        ],
        1,
        _cannot_write("--out", f"{FORBIDDEN}/b"),
    ),
    (
        "fleet-render-forbidden-registry",
        {},
        ["fleet", "render", "--registry", f"{FORBIDDEN}/reg"],
        1,
        _cannot_write("--registry", f"{FORBIDDEN}/reg"),
    ),
    (
        "fleet-revoke-forbidden-registry",
        {},
        ["fleet", "revoke", "--agent", "cam-1", "--registry", f"{FORBIDDEN}/reg"],
        1,
        _cannot_write("--registry", f"{FORBIDDEN}/reg"),
    ),
    (
        "fleet-rotate-forbidden-out",
        {},
        [
            *(
                "fleet",
                "rotate",
                "--agent",
                "cam-1",
                "--registry",
                "{tmp}/reg",
                "--broker-host",
                "h",
            ),
            *("--out", f"{FORBIDDEN}/b"),
        ],
        1,
        _cannot_write("--out", f"{FORBIDDEN}/b"),
    ),
    (
        "fleet-list-provisioned-missing-registry",
        {},
        ["fleet", "list-provisioned", "--registry", "{tmp}/reg"],
        1,
        "error: --registry {tmp}/reg: no such directory; create it or correct --registry\n",
    ),
    (
        "fleet-push-config-missing-ca-file",
        {"ops.toml": TLS_BROKER},
        [*PUSH, "--config", "{tmp}/ops.toml"],
        1,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n",
    ),
    (
        "fleet-push-config-missing-password-file",
        {"ops.toml": CLOSED_BROKER + 'username = "ops"\npassword_file = "{tmp}/pw"\n'},
        [*PUSH, "--config", "{tmp}/ops.toml"],
        1,
        f"error: mqtt.password_file {{tmp}}/pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "fleet-push-config-unreachable-broker",
        {"ops.toml": CLOSED_BROKER},
        [*PUSH, "--config", "{tmp}/ops.toml", "--wait", "0"],
        1,
        "error: cannot reach the broker at 127.0.0.1:1: Connection refused; check mqtt.host and "
        "mqtt.port, and that the broker is running\n",
    ),
    (
        "fleet-status-missing-store",
        {},
        ["fleet", "--store", "sqlite:///{tmp}/nope.db"],
        1,
        "error: {tmp}/nope.db: no such database file; check store.url (or --store), or create "
        "the store with `footfall-aggregator db upgrade`\n",
    ),
    (
        "survey-forbidden-out",
        {},
        [
            *("survey", "--clip", "{tmp}/clip.mp4", "--site", "s", "--spot", "p"),
            *("--start", "2026-05-04T09:00:00Z", "--out", f"{FORBIDDEN}/sv"),
        ],
        1,
        _cannot_write("--out", f"{FORBIDDEN}/sv"),
    ),
    (
        "survey-missing-clips-file",
        {},
        ["survey", "--clips", "{tmp}/clips.toml", "--out", "{tmp}/sv"],
        2,
        f"error: {{tmp}}/clips.toml: cannot read ({NO_FILE})\n",
    ),
    (
        "demo-missing-samples-dir",
        {},
        ["demo", "--samples-dir", "{tmp}/nope", "--out", "{tmp}/demo"],
        1,
        "error: --samples-dir {tmp}/nope: no such folder; give the folder that holds them\n",
    ),
    (
        "demo-missing-models-dir",
        {},
        ["demo", "--models-dir", "{tmp}/nope", "--out", "{tmp}/demo"],
        1,
        "error: --models-dir {tmp}/nope: no such folder; give the folder that holds them\n",
    ),
]


@pytest.fixture(autouse=True)
def _no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FOOTFALL_AGGREGATOR__STORE__URL",
        "FOOTFALL_AGGREGATOR__STORE__PASSWORD",
        "FOOTFALL_AGGREGATOR__S3__SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _make(tmp_path: Path, files: dict[str, str]) -> None:
    EventStore.open(f"sqlite:///{tmp_path / 'f.db'}").close()
    for name, content in files.items():
        path = tmp_path / name
        if content == "DIR":
            path.mkdir()
        else:
            path.write_text(content.format(tmp=tmp_path), encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "args", "code", "stderr"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_failure_is_one_line_and_an_exit_code(
    tmp_path: Path, files: dict[str, str], args: list[str], code: int, stderr: str
) -> None:
    _make(tmp_path, files)
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert (result.exit_code, result.stderr) == (code, stderr.format(tmp=tmp_path))
    assert "Traceback" not in result.output
    # Nothing was started on the way: no store created for `run`, no account for a bundle
    # that could not be written, no workbook for a site that does not exist.
    assert not (tmp_path / "run.db").exists()
    assert not (tmp_path / "reg" / "accounts").exists()
    assert not (tmp_path / "r.xlsx").exists()


def test_a_report_for_a_site_only_the_store_knows_is_built(tmp_path: Path) -> None:
    # Replayed clips of a site not in the configuration: the store knows it from its agents.
    _make(tmp_path, {})
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = EventStore.open(url)
    status = example_status(site="replayed", sent_at=datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    store.record_statuses([StatusRecord(Channel.HEARTBEAT, status, status.sent_at)])
    store.close()
    out = tmp_path / "r.xlsx"
    base = ["report", "--store", url, "--out", str(out), "--date", "2026-05-04"]
    result = runner.invoke(app, [*base, "--site", "replayed"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    result = runner.invoke(app, [*base, "--site", "other"])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: --site other: no such site in the configuration or the store (known: replayed)\n",
    )


def test_an_unreachable_object_store_fails_the_delivery_with_what_to_check(
    tmp_path: Path,
) -> None:
    _make(tmp_path, {"agg.toml": STORE + S3 + SECRET_FILE + DELIVERY + SITE, "s3.secret": "SK\n"})
    args = ["deliver", "--config", str(tmp_path / "agg.toml"), "--date", "2026-05-04"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    # The person-list exports go up before the workbook, so the first put to fail is the CSV's.
    key = "reports/north-mall/2026-05-04/north-mall_2026-05-04.persons.csv"
    assert result.stderr.strip().splitlines()[-1] == (
        f"north-mall 2026-05-04: FAILED after 1 attempts: ObjectStoreError: put s3://reports/"
        f'{key}: Could not connect to the endpoint URL: "http://127.0.0.1:1/reports/{key}"; '
        "check s3.endpoint_url and that the object store is running"
    )
    assert "Traceback" not in result.output


def test_with_debug_the_traceback_comes_before_the_line(tmp_path: Path) -> None:
    _make(tmp_path, {"agg.toml": STORE + S3 + DELIVERY + SITE})
    args = ["deliver", "--config", str(tmp_path / "agg.toml")]
    result = runner.invoke(app, ["--debug", *args])
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith(MISSING_SECRET)


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/etc/footfall/aggregator.toml"),
            "error: /etc/footfall/aggregator.toml: Permission denied; give a path this user may "
            "use, or change its permissions\n",
        ),
        (
            KeyError("lost"),
            "error: unexpected KeyError: 'lost'; this is a bug: run again with --debug and "
            "report the traceback\n",
        ),
    ],
    ids=["os-error", "unexpected"],
)
def test_what_a_command_does_not_handle_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, line: str
) -> None:
    def load(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(aggregator_config, "load_config", load)
    args = ["validate-config", "--config", str(tmp_path / "agg.toml")]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stderr) == (1, line)
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 1
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert f"in load\n    raise raised\n{type(raised).__name__}" in debug.stderr
    assert debug.stderr.endswith(line)


def test_the_program_itself_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    # CliRunner keeps an unhandled exception to itself; the installed program would print it.
    # The report's workbook goes where it cannot be written, past the command's own checks.
    _make(tmp_path, {"agg.toml": STORE + SITE})
    root = Path(__file__).resolve().parents[2]
    out = f"{FORBIDDEN}/r.xlsx"
    code = (
        "import sys; from footfall import preflight; "
        "preflight.check_output_file = lambda *a: None; "
        "from aggregator.cli import app; app(prog_name='footfall-aggregator')"
    )
    for debug in ([], ["--debug"]):
        args = ["report", "--site", "north-mall", "--config", str(tmp_path / "agg.toml")]
        done = subprocess.run(
            [sys.executable, "-c", code, *debug, *args, "--out", out],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.endswith(
            f"error: {FORBIDDEN}: {NO_FILE}; check the path, or create what is missing\n"
        )
        assert ("Traceback" in done.stderr) == bool(debug)

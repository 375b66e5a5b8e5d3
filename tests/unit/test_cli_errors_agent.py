"""``footfall-agent``: a missing or unreadable file, a missing credential, an unreachable broker or
a forbidden path is one line naming the thing and what to do, and a non-zero exit; a traceback
only with ``--debug``.

Tests run as root, where ``chmod 000`` does not stop a read: a directory stands in for an
unreadable file, and a path under ``/proc`` (where nothing can be created) for a forbidden one.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent import config as agent_config
from edge_agent.cli import app
from edge_agent.delivery.crop_uploader import CropUploader
from edge_agent.delivery.sender import EventSender

runner = CliRunner()

FORBIDDEN = "/proc/forbidden"
BASE = 'site = "s"\nspot = "p"\nagent = "a"\n'
DATA = 'data_dir = "{tmp}/data"\n'
CLOSED_BROKER = '[mqtt]\nhost = "127.0.0.1"\nport = 1\ntls = false\n'
NO_FILE = "No such file or directory"
WRITE_ADVICE = "set data_dir to a place this user may write"

# Each row: files to create ({tmp} is the test's folder; "DIR" makes a directory), the arguments,
# the exit code and stderr, exactly.
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
        {"agent.toml": "DIR"},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "{tmp}/agent.toml: invalid configuration\n  is a directory, not a TOML file\n",
    ),
    (
        "validate-config-forbidden-data-dir",
        {"agent.toml": BASE + f'data_dir = "{FORBIDDEN}/data"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        f"error: data_dir {FORBIDDEN}/data: cannot write in /proc: {NO_FILE}; {WRITE_ADVICE}\n",
    ),
    (
        "validate-config-missing-broker-files",
        {
            "agent.toml": BASE + DATA + '[mqtt]\nca_file = "{tmp}/ca.crt"\nusername = "a"\n'
            'password_file = "{tmp}/mqtt.password"\n'
        },
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n"
        f"error: mqtt.password_file {{tmp}}/mqtt.password: cannot read it: {NO_FILE}\n",
    ),
    (
        "validate-config-ca-file-without-certificate",
        {"agent.toml": BASE + DATA + '[mqtt]\nca_file = "{tmp}/ca.crt"\n', "ca.crt": "no\n"},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: mqtt.ca_file {tmp}/ca.crt: no CA certificate in it (PEM expected): "
        "NO_CERTIFICATE_OR_CRL_FOUND\n",
    ),
    (
        "validate-config-unreadable-password-file",
        {
            "agent.toml": BASE + DATA + CLOSED_BROKER + 'password_file = "{tmp}/pw"\n',
            "pw": "DIR",
        },
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: mqtt.password_file {tmp}/pw: cannot read it: Is a directory\n",
    ),
    (
        "validate-config-empty-password-file",
        {"agent.toml": BASE + DATA + CLOSED_BROKER + 'password_file = "{tmp}/pw"\n', "pw": "\n"},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: mqtt.password_file {tmp}/pw: the file is empty\n",
    ),
    (
        "validate-config-missing-s3-secret",
        {"agent.toml": BASE + DATA + '[s3]\nbucket = "crops"\naccess_key_id = "AK"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: s3.access_key_id is set but there is no secret key: set "
        "FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY or s3.secret_access_key_file\n",
    ),
    (
        "validate-config-no-s3-credentials-at-all",
        {"agent.toml": BASE + DATA + '[s3]\nbucket = "crops"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: s3: no credentials: set s3.access_key_id and FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY"
        " (or s3.secret_access_key_file), or provide AWS credentials in the environment\n",
    ),
    (
        "validate-config-missing-models-dir",
        {"agent.toml": BASE + DATA + '[models]\ndir = "{tmp}/models"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        "error: models.dir {tmp}/models: no such directory; create it or correct models.dir\n",
    ),
    (
        "validate-config-forbidden-cache-dir",
        {"agent.toml": BASE + DATA + f'[models]\ncache_dir = "{FORBIDDEN}/cache"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        f"error: models.cache_dir {FORBIDDEN}/cache: cannot write in /proc: {NO_FILE}; set "
        "models.cache_dir to a place this user may write\n",
    ),
    (
        "validate-config-missing-video-file",
        {"agent.toml": BASE + DATA + '[source]\nurl = "{tmp}/clip.mp4"\n'},
        ["validate-config", "--config", "{tmp}/agent.toml"],
        2,
        f"error: source.url {{tmp}}/clip.mp4: cannot read the video file: {NO_FILE}; give a "
        "readable file, a camera index or an rtsp:// or http(s):// URL\n",
    ),
    (
        "check-broker-missing-ca-file",
        {"agent.toml": BASE + DATA + '[mqtt]\nport = 1\nca_file = "{tmp}/ca.crt"\n'},
        ["check-broker", "--config", "{tmp}/agent.toml"],
        1,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n",
    ),
    (
        "check-broker-missing-password-file",
        {"agent.toml": BASE + DATA + CLOSED_BROKER + 'password_file = "{tmp}/pw"\n'},
        ["check-broker", "--config", "{tmp}/agent.toml"],
        1,
        f"error: mqtt.password_file {{tmp}}/pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "check-broker-unreachable",
        {"agent.toml": BASE + DATA + CLOSED_BROKER},
        ["check-broker", "--config", "{tmp}/agent.toml"],
        1,
        "error: cannot reach the broker at 127.0.0.1:1: Connection refused; check mqtt.host and "
        "mqtt.port, and that the broker is running\n",
    ),
    (
        "deliver-forbidden-data-dir",
        {"agent.toml": BASE + f'data_dir = "{FORBIDDEN}/data"\n' + CLOSED_BROKER},
        ["deliver", "--config", "{tmp}/agent.toml"],
        1,
        f"error: data_dir {FORBIDDEN}/data: cannot write in /proc: {NO_FILE}; {WRITE_ADVICE}\n",
    ),
    (
        "deliver-missing-s3-secret",
        {"agent.toml": BASE + DATA + '[s3]\nbucket = "crops"\naccess_key_id = "AK"\n'},
        ["deliver", "--config", "{tmp}/agent.toml"],
        1,
        "error: s3.access_key_id is set but there is no secret key: set "
        "FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY or s3.secret_access_key_file\n",
    ),
    (
        "deliver-unreadable-s3-secret-file",
        {
            "agent.toml": BASE + DATA + '[s3]\nbucket = "crops"\naccess_key_id = "AK"\n'
            'secret_access_key_file = "{tmp}/s3.secret"\n',
            "s3.secret": "DIR",
        },
        ["deliver", "--config", "{tmp}/agent.toml"],
        1,
        "error: s3.secret_access_key_file {tmp}/s3.secret: cannot read it: Is a directory\n",
    ),
    (
        "deliver-missing-password-file",
        {"agent.toml": BASE + DATA + CLOSED_BROKER + 'password_file = "{tmp}/pw"\n'},
        ["deliver", "--config", "{tmp}/agent.toml"],
        1,
        f"error: mqtt.password_file {{tmp}}/pw: cannot read it: {NO_FILE}\n",
    ),
    (
        "run-forbidden-data-dir",
        {"agent.toml": BASE + f'data_dir = "{FORBIDDEN}/data"\n[source]\nurl = "0"\n'},
        ["run", "--config", "{tmp}/agent.toml"],
        1,
        f"error: data_dir {FORBIDDEN}/data: cannot write in /proc: {NO_FILE}; {WRITE_ADVICE}\n",
    ),
    (
        "run-missing-ca-file",
        {
            "agent.toml": BASE + DATA + '[source]\nurl = "0"\n'
            '[mqtt]\nport = 1\nca_file = "{tmp}/ca.crt"\n'
        },
        ["run", "--config", "{tmp}/agent.toml"],
        1,
        f"error: mqtt.ca_file {{tmp}}/ca.crt: cannot read it: {NO_FILE}\n",
    ),
    (
        "process-forbidden-out",
        {},
        [
            "process",
            *("--clip", "{tmp}/clip.mp4", "--site", "s", "--spot", "p"),
            *("--start", "2026-05-04T09:00:00Z", "--out", f"{FORBIDDEN}/out"),
        ],
        1,
        f"error: {FORBIDDEN}/out: cannot write events there ({NO_FILE}); choose a folder this "
        "user may write\n",
    ),
    (
        "process-missing-clips-file",
        {},
        ["process", "--clips", "{tmp}/clips.toml", "--out", "{tmp}/out"],
        2,
        f"error: {{tmp}}/clips.toml: cannot read ({NO_FILE})\n",
    ),
    (
        "eval-mot-missing-clip",
        {},
        ["eval", "mot", "--clip", "{tmp}/clip.mp4"],
        2,
        "error: clip {tmp}/clip.mp4 not found: give the path of a video file\n",
    ),
    (
        "outbox-status-missing-outbox",
        {},
        ["outbox", "status", "--data-dir", "{tmp}/data"],
        1,
        "error: no outbox at {tmp}/data/outbox.db; check the agent's data directory (its "
        "data_dir)\n",
    ),
    (
        "eval-mot-missing-clip",
        {},
        ["eval", "mot", "--clip", "{tmp}/nope.mp4"],
        2,
        "error: clip {tmp}/nope.mp4 not found: give the path of a video file\n",
    ),
    (
        "models-cards-missing-folder",
        {},
        ["models", "cards", "--cards-dir", "{tmp}/nope"],
        1,
        "error: --cards-dir {tmp}/nope: no *.eval.json in it; write them with "
        "`footfall-agent models evaluate`\n",
    ),
    (
        "models-train-missing-folder",
        {},
        ["models", "train", "{tmp}/nope", "--out", "{tmp}/run"],
        1,
        "error: {tmp}/nope: not a folder of images\n",
    ),
    (
        "models-export-missing-checkpoint",
        {},
        ["models", "export", "{tmp}/nope.pt", "{tmp}/out.onnx"],
        1,
        "error: no checkpoint at {tmp}/nope.pt\n",
    ),
    (
        "models-site-standin-missing-source",
        {},
        ["models", "site-standin", "{tmp}/nope", "{tmp}/site"],
        1,
        "error: {tmp}/nope: not a folder of images\n",
    ),
    (
        "models-finetune-missing-site",
        {},
        ["models", "finetune", "{tmp}/nope.pt", "{tmp}/site", "--out", "{tmp}/ft"],
        1,
        "error: {tmp}/site: not a folder of images\n",
    ),
    (
        "models-calibrate-missing-data",
        {},
        ["models", "calibrate", "cydral", "--data", "{tmp}/nope"],
        1,
        "error: {tmp}/nope: not a folder of images\n",
    ),
    *(
        (
            f"eval-{'-'.join(command)}-missing-shared",
            {},
            ["eval", *command, "--shared", "{tmp}/nope", *extra],
            2,
            "error: {tmp}/nope has no models/ folder\n",
        )
        for command, extra in (
            (["suite"], ["--out", "{tmp}/s"]),
            (["clips"], ["--out", "{tmp}/c"]),
            (["detectors"], []),
            (["agegender"], []),
            (["scenario", "run"], ["--scenario", "small-faces"]),
        )
    ),
    (
        "models-evaluate-missing-data",
        {},
        ["models", "evaluate", "cydral", "--data", "{tmp}/nodata"],
        1,
        "error: {tmp}/nodata: not a folder of images\n",
    ),
]


@pytest.fixture(autouse=True)
def _no_aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The AWS default chain, emptied, so that "no credentials" is what every machine sees.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _make(tmp_path: Path, files: dict[str, str]) -> None:
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
    assert not (tmp_path / "data").exists()  # a failed start leaves no outbox behind


def test_with_debug_the_traceback_comes_before_the_line(tmp_path: Path) -> None:
    _make(tmp_path, {"agent.toml": BASE + f'data_dir = "{FORBIDDEN}/data"\n' + CLOSED_BROKER})
    result = runner.invoke(app, ["--debug", "deliver", "--config", str(tmp_path / "agent.toml")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith(
        f"error: data_dir {FORBIDDEN}/data: cannot write in /proc: {NO_FILE}; {WRITE_ADVICE}\n"
    )


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/etc/footfall-agent/agent.toml"),
            "error: /etc/footfall-agent/agent.toml: Permission denied; give a path this user may "
            "use, or change its permissions\n",
        ),
        (
            FileNotFoundError(errno.ENOENT, NO_FILE, "/srv/x", None, "/srv/y"),
            f"error: /srv/x -> /srv/y: {NO_FILE}; check the path, or create what is missing\n",
        ),
        (
            ImportError("PyTorch is not installed: install the 'train' extra"),
            "error: PyTorch is not installed: install the 'train' extra\n",
        ),
        (
            ModuleNotFoundError("No module named 'cv2'", name="cv2"),
            "error: No module named 'cv2'; install the extra of this package that provides 'cv2'\n",
        ),
        (
            RuntimeError("two\nlines"),
            "error: unexpected RuntimeError: two lines; this is a bug: run again with --debug and "
            "report the traceback\n",
        ),
    ],
    ids=[
        "os-error-with-file",
        "os-error-with-two-files",
        "missing-extra",
        "missing-module",
        "unexpected",
    ],
)
def test_what_a_command_does_not_handle_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, line: str
) -> None:
    def load(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(agent_config, "load_agent_config", load)
    args = ["validate-config", "--config", str(tmp_path / "agent.toml")]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stderr) == (1, line)
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 1
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert f"in load\n    raise raised\n{type(raised).__name__}" in debug.stderr
    assert debug.stderr.endswith(line)


@pytest.mark.parametrize(
    ("section", "loop", "line"),
    [
        (CLOSED_BROKER, EventSender, "error: MQTT sender died: RuntimeError: lost its mind\n"),
        (
            '[s3]\nbucket = "crops"\nendpoint_url = "http://127.0.0.1:1"\naccess_key_id = "AK"\n'
            'secret_access_key_file = "{tmp}/s3.secret"\n',
            CropUploader,
            "error: crop uploader died: RuntimeError: lost its mind\n",
        ),
    ],
    ids=["sender", "uploader"],
)
def test_a_delivery_thread_that_dies_ends_deliver_with_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    section: str,
    loop: type[EventSender | CropUploader],
    line: str,
) -> None:
    def broken(_self: object) -> None:
        raise RuntimeError("lost its mind")

    monkeypatch.setattr(loop, "_loop", broken)
    _make(tmp_path, {"agent.toml": BASE + DATA + section, "s3.secret": "SK\n"})
    result = runner.invoke(app, ["deliver", "--config", str(tmp_path / "agent.toml")])
    assert result.exit_code == 1
    assert result.stderr.splitlines(keepends=True)[-1] == line


def test_the_program_itself_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    # CliRunner keeps an unhandled exception to itself; the installed program would print it.
    config = tmp_path / "agent.toml"
    _make(tmp_path, {"agent.toml": BASE + f'data_dir = "{FORBIDDEN}/data"\n' + CLOSED_BROKER})
    root = Path(__file__).resolve().parents[2]
    for debug in ([], ["--debug"]):
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", *debug, "deliver", "--config", str(config)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.endswith(
            f"error: data_dir {FORBIDDEN}/data: cannot write in /proc: {NO_FILE}; {WRITE_ADVICE}\n"
        )
        assert ("Traceback" in done.stderr) == bool(debug)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_sender_that_dies_is_logged_in_one_line_and_ends_the_program(
    tmp_path: Path, debug: bool
) -> None:
    _make(tmp_path, {"agent.toml": BASE + DATA + CLOSED_BROKER})
    code = (
        "from edge_agent.delivery.sender import EventSender\n"
        "def broken(self): raise RuntimeError('lost its mind')\n"
        "EventSender._loop = broken\n"
        "from edge_agent.cli import app\n"
        "app(prog_name='footfall-agent')\n"
    )
    done = subprocess.run(
        [
            *(sys.executable, "-c", code),
            *(["--debug"] if debug else []),
            *("deliver", "--config", str(tmp_path / "agent.toml")),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.endswith("error: MQTT sender died: RuntimeError: lost its mind\n")
    logged = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert [line.split(": ", 1)[1] for line in logged] == [
        "MQTT sender died: RuntimeError: lost its mind",
        "stopping the agent; what it has not delivered stays in the outbox",
    ]
    assert ("Traceback" in done.stderr) == debug

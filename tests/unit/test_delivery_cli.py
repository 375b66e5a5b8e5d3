"""``footfall-agent outbox status``, the argument checks of ``deliver``, and the start-up checks
of ``run`` and ``deliver``."""

import json
from pathlib import Path

from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.delivery.outbox import Outbox, outbox_path
from footfall.contract.topics import AgentAddress
from tests.delivery_support import synthetic_events

runner = CliRunner()
ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")


def _fill(data_dir: Path) -> None:
    with Outbox(outbox_path(data_dir)) as box:
        items = list(synthetic_events(3, seed=1, address=ADDRESS, crop_bytes=1000, exact_size=True))
        seqs = box.put_many(items)
        box.mark_published(seqs[:1], confirmed=True)
        box.mark_crop_stored(seqs[0])


def test_outbox_status_reads_a_data_dir(tmp_path: Path) -> None:
    _fill(tmp_path)
    result = runner.invoke(app, ["outbox", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"outbox:         {tmp_path / 'outbox.db'}"
    assert lines[1].startswith("events waiting: 2 (oldest 0m 0")
    assert lines[2].startswith("crops waiting:  2 (oldest 0m 0")
    assert lines[4] == (
        "events:         accepted 3, published 1, confirmed 1, published again 0, duplicate puts 0"
    )
    assert lines[5] == (
        "crops:          accepted 3, stored 1, dropped 0 (after their event was sent: 0)"
    )


def test_outbox_status_json_and_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill(data)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'site = "site-a"\nspot = "spot-1"\nagent = "agent-1"\ndata_dir = "{data}"\n'
        "[outbox]\nmax_bytes = 2097152\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["outbox", "status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert (status["depth"], status["crops_pending"], status["max_bytes"]) == (2, 2, 2097152)
    assert status["counters"]["events_published"] == 1
    text = runner.invoke(app, ["outbox", "status", "--config", str(config)]).stdout
    assert " of 2,097,152 cap (file " in text


def test_outbox_status_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["outbox", "status", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"error: no outbox at {tmp_path / 'outbox.db'}; check the agent's data directory (its "
        "data_dir)\n"
    )
    neither = runner.invoke(app, ["outbox", "status"])
    assert neither.stderr == "error: give exactly one of --data-dir or --config\n"


def test_deliver_needs_somewhere_to_deliver_to(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('site = "s"\nspot = "p"\nagent = "a"\n', encoding="utf-8")
    result = runner.invoke(app, ["deliver", "--config", str(config)])
    assert result.exit_code == 1
    assert (
        result.stderr == f"error: {config}: nothing to deliver to (no [mqtt] and no [s3] section)\n"
    )


def test_run_checks_the_delivery_files_before_the_models_and_the_camera(tmp_path: Path) -> None:
    """Neither the camera (a file that does not exist) nor the models (an empty folder) are
    what the agent complains about: the password file is checked first."""
    password = tmp_path / "mqtt.password"
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""site = "s"
spot = "p"
agent = "a"
data_dir = "{tmp_path / "data"}"

[source]
url = "{tmp_path / "no-camera.mp4"}"

[mqtt]
host = "127.0.0.1"
tls = false
username = "a"
password_file = "{password}"
""",
        encoding="utf-8",
    )
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    result = runner.invoke(app, ["run", "--config", str(config), "--models-dir", str(empty_models)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: mqtt.password_file {password}: cannot read it: No such file or directory\n"
    )
    assert not (tmp_path / "data").exists()


def test_deliver_and_check_broker_name_a_missing_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'site = "s"\nspot = "p"\nagent = "a"\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nca_file = "{ca}"\n',
        encoding="utf-8",
    )
    line = f"error: mqtt.ca_file {ca}: cannot read it: No such file or directory\n"
    for command in ("deliver", "check-broker"):
        result = runner.invoke(app, [command, "--config", str(config)])
        assert result.exit_code == 1
        assert result.stderr == line

"""The survey with an agent configuration that names a broker: the clip's people go to the fleet
(through the agent's outbox, over MQTT with TLS and the agent's own ACL) instead of the local
workbook."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from tests.services import MqttNamespace

pytestmark = pytest.mark.services


def test_survey_publishes_a_clip_whose_agent_has_a_broker(
    mqtt_namespace: MqttNamespace,
    shared_dir: Path,
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = mqtt_namespace
    agent = ns.agents[0]
    camera = tmp_path / "camera.toml"
    camera.write_text(
        f'agent = "{agent.agent}"\ndata_dir = "{tmp_path / "agent-data"}"\n'
        # A bare subscriber, no aggregator sending receipts: the PUBACK confirms.
        '[delivery]\nconfirm = "broker"\n'
        f'[mqtt]\nhost = "{ns.broker.host}"\nport = {ns.broker.tls_port}\n'
        f'ca_file = "{ns.broker.ca_file}"\nusername = "{agent.name}"\ntopic_prefix = "{ns.prefix}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("FOOTFALL_AGENT__MQTT__PASSWORD", agent.password)
    clips = tmp_path / "clips.toml"
    clips.write_text(
        f'[[clip]]\npath = "{shared_dir / "video" / "Megamind.avi"}"\nsite = "{agent.site}"\n'
        f'spot = "{agent.spot}"\nagent = "{agent.agent}"\nstart = 2026-05-04T13:05:00+02:00\n'
        f'config = "{camera}"\n',
        encoding="utf-8",
    )
    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(ns.topic(agent, "events"))
        result = CliRunner().invoke(
            app,
            [
                "survey",
                "--clips",
                str(clips),
                "--out",
                str(tmp_path / "out"),
                "--models-dir",
                str(models_dir),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if "Megamind.avi" in x)
        people = int(line.split(": ")[1].split(" people")[0])
        assert people > 0 and line.endswith(", published to the broker")
        received = {}
        while (message := watcher.next_message(timeout=5)) is not None:
            event = json.loads(message.payload)
            received[event["event_id"]] = event
    assert len(received) == people
    assert {e["spot"] for e in received.values()} == {agent.spot}
    # Nothing of it was kept for a local workbook.
    assert "workbook:" not in result.output


def test_a_clip_whose_agent_cannot_publish_fails_with_the_file_named(
    mqtt_namespace: MqttNamespace, shared_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    ns = mqtt_namespace
    agent = ns.agents[0]
    password = tmp_path / "mqtt.password"  # not there
    camera = tmp_path / "camera.toml"
    camera.write_text(
        f'agent = "{agent.agent}"\ndata_dir = "{tmp_path / "agent-data"}"\n'
        # A bare subscriber, no aggregator sending receipts: the PUBACK confirms.
        '[delivery]\nconfirm = "broker"\n'
        f'[mqtt]\nhost = "{ns.broker.host}"\nport = {ns.broker.tls_port}\n'
        f'ca_file = "{ns.broker.ca_file}"\nusername = "{agent.name}"\n'
        f'password_file = "{password}"\ntopic_prefix = "{ns.prefix}"\n',
        encoding="utf-8",
    )
    clip = shared_dir / "video" / "Megamind.avi"
    clips = tmp_path / "clips.toml"
    clips.write_text(
        f'[[clip]]\npath = "{clip}"\nsite = "{agent.site}"\n'
        f'spot = "{agent.spot}"\nagent = "{agent.agent}"\nstart = 2026-05-04T13:05:00+02:00\n'
        f'config = "{camera}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app,
        [
            "survey",
            "--clips",
            str(clips),
            "--out",
            str(tmp_path / "out"),
            "--models-dir",
            str(models_dir),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if "Megamind.avi" in x)
    assert line.endswith(
        f"FAILED: {clip}: cannot publish: mqtt.password_file {password}: cannot read it: "
        "No such file or directory"
    ), line
    assert not (tmp_path / "agent-data").exists()

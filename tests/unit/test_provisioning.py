"""Broker password hashes, ACL rendering and the fleet registry, without a broker (the real
broker accepting these files is tests/integration/test_fleet_broker.py)."""

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.bundles import BrokerEndpoint, write_agent_bundle
from aggregator.cli import app
from aggregator.provisioning import Registry, RegistryError
from footfall.broker_auth import (
    AccountAcl,
    Role,
    acl_lines,
    is_mosquitto_hash,
    mosquitto_hash,
    new_password,
    render_passwd,
    verify_mosquitto_hash,
)
from tests.services import unavailable

runner = CliRunner()


def test_hash_is_mosquitto_format_and_verifies() -> None:
    password = new_password()
    hashed = mosquitto_hash(password)
    assert hashed.startswith("$7$101$") and is_mosquitto_hash(hashed)
    assert password not in hashed
    assert verify_mosquitto_hash(password, hashed)
    assert not verify_mosquitto_hash(password + "x", hashed)
    assert mosquitto_hash(password) != hashed  # a fresh salt every time


def test_hash_agrees_with_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        unavailable("mosquitto_passwd is not installed (Debian package mosquitto)")
    file = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(file), "alice", "s3cret"], check=True)
    hashed = file.read_text().strip().split(":", 1)[1]
    assert verify_mosquitto_hash("s3cret", hashed)
    assert not verify_mosquitto_hash("s3cret!", hashed)


def test_passwd_refuses_anything_but_a_hash() -> None:
    with pytest.raises(ValueError, match="not a \\$7\\$ hash"):
        render_passwd([("cam-1", "plain-password")])
    with pytest.raises(ValueError, match="appears twice"):
        render_passwd([("a", mosquitto_hash("x")), ("a", mosquitto_hash("y"))])


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            Role.AGENT,
            [
                "user cam-1",
                "topic write p/v1/s/sp/cam-1/events",
                "topic write p/v1/s/sp/cam-1/status",
                "topic write p/v1/s/sp/cam-1/heartbeat",
                "topic write p/v1/s/sp/cam-1/config-result",
                "topic read p/v1/s/sp/cam-1/receipts",
                "topic readwrite p/v1/s/sp/cam-1/config",
            ],
        ),
        (
            Role.AGGREGATOR,
            ["user cam-1", "topic read p/v1/#", "topic write p/v1/+/+/+/receipts"],
        ),
        (
            Role.OPERATOR,
            [
                "user cam-1",
                "topic readwrite p/v1/+/+/+/config",
                "topic read p/v1/+/+/+/config-result",
            ],
        ),
    ],
)
def test_acl_blocks(role: Role, expected: list[str]) -> None:
    ids = ("s", "sp", "cam-1") if role is Role.AGENT else (None, None, None)
    assert acl_lines(AccountAcl("cam-1", role, "p/v1", *ids)) == expected


def test_registry_lifecycle(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    issued = registry.provision_agent("site-a", "spot-1", "cam-1")
    with pytest.raises(RegistryError, match="already provisioned"):
        registry.provision_agent("site-b", "spot-1", "cam-1")
    registry.add_service(Role.AGGREGATOR, "aggregator")
    passwd = registry.passwd_file.read_text()
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["cam-1", "aggregator"]
    assert f"cam-1:{issued.account.password_hash}" in passwd
    assert issued.password not in passwd

    rotated = registry.rotate("cam-1")
    assert rotated.account.password_hash != issued.account.password_hash
    assert rotated.account.rotated_at is not None

    registry.revoke("cam-1")
    assert "cam-1" not in registry.passwd_file.read_text()
    assert "cam-1" not in registry.acl_file.read_text()
    assert [a.name for a in registry.accounts() if not a.active] == ["cam-1"]
    with pytest.raises(RegistryError, match="already revoked"):
        registry.revoke("cam-1")
    # A revoked id may be provisioned again, with a new password.
    again = registry.provision_agent("site-a", "spot-1", "cam-1")
    assert again.account.active and again.password != issued.password


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("site a", "spot", "cam"), "'site a' is not a valid id"),
        (("site", "spot", "c/1"), "'c/1' is not a valid id"),
    ],
)
def test_registry_refuses_bad_ids(tmp_path: Path, args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Registry(tmp_path).provision_agent(*args)


def test_bundle_refuses_a_used_directory(tmp_path: Path) -> None:
    issued = Registry(tmp_path / "reg").provision_agent("s", "p", "a")
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(RegistryError, match="not empty"):
        write_agent_bundle(out, issued, BrokerEndpoint("broker.example"))


def test_cli_provision_and_list(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    out = tmp_path / "bundle"
    result = runner.invoke(
        app,
        [
            "fleet",
            "provision",
            "--registry",
            str(reg),
            "--site",
            "berlin",
            "--spot",
            "north",
            "--agent",
            "cam-7",
            "--broker-host",
            "broker.example.net",
            "--ca",
            str(ca),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    password = (out / "mqtt.password").read_text().strip()
    assert password not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert sorted(p.name for p in out.iterdir()) == ["agent.toml", "ca.crt", "mqtt.password"]
    assert "make the broker re-read them (SIGHUP)" in result.output

    listed = runner.invoke(app, ["fleet", "list-provisioned", "--registry", str(reg), "--json"])
    rows = json.loads(listed.output)
    assert rows[0]["name"] == "cam-7" and "password_hash" not in rows[0]

    again = runner.invoke(
        app,
        [
            "fleet",
            "provision",
            "--registry",
            str(reg),
            "--site",
            "berlin",
            "--spot",
            "south",
            "--agent",
            "cam-7",
            "--broker-host",
            "b",
            "--out",
            str(tmp_path / "other"),
        ],
    )
    assert again.exit_code == 1
    assert "error: 'cam-7' is already provisioned (agent berlin/north/cam-7)" in again.output


def test_cli_reload_refuses_a_pid_that_is_not_mosquitto(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    pid_file.write_text("1\n")
    result = runner.invoke(
        app,
        ["fleet", "render", "--registry", str(tmp_path / "r"), "--reload-pid-file", str(pid_file)],
    )
    assert result.exit_code == 1
    assert "the broker was not reloaded: process 1 from" in result.output


def test_cli_bundles_name_their_files_where_install_dir_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.config import load_aggregator_config
    from edge_agent.config import load_agent_config

    monkeypatch.chdir(tmp_path)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    reg = ["--registry", "reg", "--broker-host", "127.0.0.1", "--broker-port", "18883"]
    result = runner.invoke(
        app,
        [
            *("fleet", "provision", *reg, "--ca", str(ca), "--site", "s", "--spot", "sp"),
            *("--agent", "cam-1", "--out", "b", "--install-dir", "b", "--data-dir", "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    agent = load_agent_config(tmp_path / "b" / "agent.toml")
    assert agent.data_dir == tmp_path / "data"
    assert agent.mqtt is not None and agent.mqtt.port == 18883
    assert agent.mqtt.ca_file == tmp_path / "b" / "ca.crt"
    assert agent.mqtt.password_file == tmp_path / "b" / "mqtt.password"

    result = runner.invoke(
        app,
        [
            *("fleet", "add-user", *reg, "--ca", str(ca), "--role", "operator", "--user", "ops"),
            *("--out", "ops", "--install-dir", "ops"),
        ],
    )
    assert result.exit_code == 0, result.output
    ops = load_aggregator_config(tmp_path / "ops" / "mqtt.toml")
    assert ops.mqtt is not None and ops.mqtt.ca_file == tmp_path / "ops" / "ca.crt"
    assert ops.mqtt.password_file == tmp_path / "ops" / "mqtt.password"
    assert (tmp_path / "ops" / "mqtt.password").is_file()

    # Without --install-dir, the paths of an installed device (as the guide installs it).
    result = runner.invoke(
        app, ["fleet", "provision", *reg, "--site", "s", "--spot", "sp2", "--agent", "cam-2"]
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "bundle-cam-2" / "agent.toml").read_text()
    assert 'password_file = "/etc/footfall-agent/mqtt.password"' in text
    assert 'data_dir = "/var/lib/footfall-agent"' in text
    assert "owner root, group footfall-agent, mode 0640" in text

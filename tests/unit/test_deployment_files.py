"""What can be checked of the deployment files on a machine without a container engine or a
cluster: they parse, they name commands, files, secrets and settings that exist, the aggregator
configuration they carry validates, and the systemd unit passes ``systemd-analyze verify``.

The Mosquitto configuration is started as a real broker in tests/integration/test_fleet_broker.py.
What is not checked here: that the images build and the containers, compose stack or manifests
run (no Docker engine and no cluster on these machines).
"""

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from aggregator.cli import app as aggregator_app
from aggregator.config import AggregatorConfig
from edge_agent.cli import app as agent_app
from edge_agent.config import DeliverySettings
from footfall.settings import load_config
from tests.services import unavailable

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SCRIPTS: dict[str, typer.Typer] = {
    "footfall-agent": agent_app,
    "footfall-aggregator": aggregator_app,
}


def _console_scripts() -> dict[str, str]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        scripts: dict[str, str] = tomllib.load(fh)["project"]["scripts"]
    return scripts


def assert_command(argv: list[str]) -> None:
    """``argv`` (script, subcommand, ...) names a console script and one of its commands,
    down to nested groups (``db upgrade``), whose options are all known."""
    script, *rest = argv
    assert script in _console_scripts(), f"{script} is not a console script of pyproject.toml"
    # typer carries its own click: groups are told by their sub-commands, not by class.
    command: Any = typer.main.get_command(SCRIPTS[script])
    words = list(rest)
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"{script}: no command {name!r} in {argv}"
        command = command.commands[name]
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for word in words:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"{argv}: unknown option {word}"


# --------------------------------------------------------------------------------------------
# Dockerfiles


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize(
    ("name", "extra", "script"),
    [
        ("Dockerfile.agent", "edge", "footfall-agent"),
        ("Dockerfile.aggregator", "aggregator", "footfall-aggregator"),
    ],
)
def test_dockerfile(name: str, extra: str, script: str) -> None:
    instructions = _instructions(INFRA / "docker" / name)
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) >= 2, "multi-stage: build the venv, copy it into a clean image"
    final = instructions[stages[-1] :]
    users = [arg for word, arg in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage runs as root"
    runs = " ".join(arg for word, arg in instructions if word == "RUN")
    assert f'".[{extra}]"' in runs, f"installs the {extra} extra"
    for word, arg in instructions:
        if word == "COPY" and not arg.startswith("--from"):
            *sources, _dest = arg.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    entry = next(arg for word, arg in final if word == "ENTRYPOINT")
    cmd = next(arg for word, arg in final if word == "CMD")
    argv = yaml.safe_load(entry) + yaml.safe_load(cmd)  # JSON arrays
    assert argv[0] == script
    assert_command(argv)


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


# --------------------------------------------------------------------------------------------
# Compose


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    return data


def test_compose_cloud_side() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"broker", "s3", "postgres", "aggregator"} <= set(services)
    base = INFRA / "compose"
    declared = set(compose.get("secrets", {}))
    for name, service in services.items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name}: secret {secret} is not declared"
        build = service.get("build")
        if build is not None:
            dockerfile = (base / build["context"] / build["dockerfile"]).resolve()
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            assert_command(["footfall-aggregator", *service["command"]])
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            # Files of the repository must exist; ./registry, ./certs, ./secrets are the
            # operator's (made by the fleet commands and their own CA).
            if source.startswith(".") and not source.startswith(("./registry", "./certs")):
                assert (base / source).exists(), f"{name}: {source} missing"
    broker = services["broker"]
    assert "../mosquitto/mosquitto.conf:/etc/mosquitto/mosquitto.conf:ro" in broker["volumes"]
    assert broker["command"][-1] == "/etc/mosquitto/mosquitto.conf"
    conf = (INFRA / "mosquitto" / "mosquitto.conf").read_text()
    for mount in broker["volumes"]:
        target = mount.split(":")[1]
        if target.startswith("/etc/mosquitto/"):
            assert target in conf or target == "/etc/mosquitto/mosquitto.conf"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def test_compose_aggregator_config_validates_with_its_environment() -> None:
    aggregator = _compose()["services"]["aggregator"]
    config = load_config(
        AggregatorConfig,
        INFRA / "compose" / "aggregator.toml",
        env_prefix="FOOTFALL_AGGREGATOR",
        environ=aggregator["environment"],
    )
    assert config.mqtt is not None and config.mqtt.password_file is not None
    assert config.health.enabled and config.health.bind == "0.0.0.0"
    assert config.store.auto_upgrade is False  # the db-upgrade service migrates


# --------------------------------------------------------------------------------------------
# Kubernetes


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), path
                docs.append(doc)
    return docs


def _find(kind: str) -> list[dict[str, Any]]:
    return [d for d in _manifests() if d["kind"] == kind]


def _pod_specs() -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in _find("StatefulSet")]
    specs += [d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in _find("CronJob")]
    return specs


def test_k8s_objects_are_consistent() -> None:
    namespaces = {d["metadata"]["name"] for d in _find("Namespace")}
    for doc in _manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] in namespaces
    secret = _find("Secret")[0]
    secret_keys = set(secret["stringData"])
    configmaps = {d["metadata"]["name"]: d for d in _find("ConfigMap")}
    for spec in _pod_specs():
        volumes = {v["name"]: v for v in spec["volumes"]}
        for volume in volumes.values():
            if "secret" in volume:
                assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert_command([*container["command"], *container["args"]])
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            secret_dirs = [p for p, m in mounts.items() if "secret" in volumes[m["name"]]]
            for env in container.get("env", []):
                value = env.get("value", "")
                for directory in secret_dirs:
                    if value.startswith(directory + "/"):
                        assert value[len(directory) + 1 :] in secret_keys, env
            assert container["image"].startswith("footfall-aggregator:")


def _container_config(container: dict[str, Any], tmp_path: Path) -> AggregatorConfig:
    """The ConfigMap's aggregator.toml with the container's plain environment variables."""
    path = tmp_path / f"{container['name']}.toml"
    path.write_text(_find("ConfigMap")[0]["data"]["aggregator.toml"])
    environ = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return load_config(AggregatorConfig, path, env_prefix="FOOTFALL_AGGREGATOR", environ=environ)


def test_k8s_replicas_share_one_subscription_and_the_cronjob_delivers(tmp_path: Path) -> None:
    (statefulset,) = _find("StatefulSet")
    assert statefulset["spec"]["replicas"] >= 2
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    client_id = next(e for e in container["env"] if e["name"].endswith("__INGEST__CLIENT_ID"))
    assert client_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    config = _container_config(container, tmp_path)
    assert config.ingest.shared_group == "aggregators"
    assert config.delivery is not None and config.delivery.in_service is False
    assert config.mqtt is not None and str(config.mqtt.ca_file).startswith("/etc/footfall/secrets/")
    assert config.health.port == container["ports"][0]["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (cronjob,) = _find("CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][0] == "deliver"
    _container_config(job, tmp_path)


# --------------------------------------------------------------------------------------------
# systemd


UNIT = INFRA / "systemd" / "footfall-agent.service"


def _unit() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("", {})
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key] = value
    return sections


def test_systemd_unit_settings() -> None:
    service = _unit()["Service"]
    assert service["User"] not in ("root", "0") and service["Restart"] == "always"
    assert service["StateDirectory"] == "footfall-agent"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "footfall-agent"
    assert_command(["footfall-agent", *argv[1:]])
    # Room for the agent's drain on SIGTERM plus the offline status.
    drain = DeliverySettings().shutdown_drain_seconds
    assert int(service["TimeoutStopSec"]) > drain + 10


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        unavailable("systemd-analyze is not installed (Debian package systemd)")
    script = str(Path(sys.executable).parent / "footfall-agent")
    assert Path(script).is_file()
    # verify insists that ExecStart exists: point it at this environment's script, as the
    # install would at /opt/footfall/bin.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/footfall/bin/footfall-agent", script))
    result = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr

"""Configuration loading: TOML + environment, every error with its key path, secrets never in files."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app as aggregator_app
from aggregator.config import AggregatorConfig
from edge_agent.cli import app as agent_app
from edge_agent.config import AgentConfig
from footfall.settings import ConfigError, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "infra" / "config"
runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_agent_config_is_valid() -> None:
    cfg = load_config(
        AgentConfig, EXAMPLES / "agent.example.toml", env_prefix="FOOTFALL_AGENT", environ={}
    )
    assert cfg.address.agent == "cam-001"
    assert cfg.mqtt is not None and cfg.mqtt.port == 8883


def test_example_aggregator_config_is_valid() -> None:
    cfg = load_config(
        AggregatorConfig,
        EXAMPLES / "aggregator.example.toml",
        env_prefix="FOOTFALL_AGGREGATOR",
        environ={},
    )
    assert cfg.sites[0].timezone == "Europe/Berlin"


def test_environment_overrides_file_and_supplies_secrets(tmp_path: Path) -> None:
    path = _write(tmp_path, 'site = "s"\nspot = "p"\nagent = "a"\n[mqtt]\nhost = "h"\n')
    env = {"FOOTFALL_AGENT__MQTT__PORT": "1884", "FOOTFALL_AGENT__MQTT__PASSWORD": "hunter2"}
    cfg = load_config(AgentConfig, path, env_prefix="FOOTFALL_AGENT", environ=env)
    assert cfg.mqtt is not None
    assert cfg.mqtt.port == 1884
    assert cfg.mqtt.password_value() == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in cfg.model_dump_json()


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    path = _write(
        tmp_path, f'site = "s"\nspot = "p"\nagent = "a"\n[mqtt]\npassword_file = "{secret}"\n'
    )
    cfg = load_config(AgentConfig, path, env_prefix="FOOTFALL_AGENT", environ={})
    assert cfg.mqtt is not None and cfg.mqtt.password_value() == "s3cret"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            'spot = "p"\nagent = "a"\n',
            {},
            ["site: Field required"],
        ),
        (
            'site = "s/1"\nspot = "p"\nagent = "a"\ncolour = "red"\n',
            {},
            [
                "site: 's/1' is not a valid id: use 1-32 characters of letters, digits, '-' or '_', "
                "starting with a letter or digit, got 's/1'",
                "colour: unknown key",
            ],
        ),
        (
            'site = "s"\nspot = "p"\nagent = "a"\n[mqtt]\nport = 70000\nprotocol = "4"\n',
            {},
            [
                "mqtt.port: Input should be less than or equal to 65535, got 70000",
                "mqtt.protocol: Input should be '5' or '3.1.1', got '4'",
            ],
        ),
        (
            'site = "s"\nspot = "p"\nagent = "a"\n[mqtt]\npassword = "hunter2"\n',
            {},
            [
                "mqtt.password: secrets are not read from the config file; set "
                "FOOTFALL_AGENT__MQTT__PASSWORD or mqtt.password_file"
            ],
        ),
        (
            'site = "s"\nspot = "p"\nagent = "a"\n',
            {"FOOTFALL_AGENT__MQTT__PORT": "many"},
            [
                "mqtt.port: not JSON: in the environment, numbers, true/false, lists and sections "
                "are written as JSON (e.g. 8883, true, [1, 2]), got 'many' (from "
                "FOOTFALL_AGENT__MQTT__PORT)"
            ],
        ),
        (
            'site = "s"\nspot = "p"\nagent = "a"\n[s3]\nbucket = "Bad_Bucket"\n',
            {},
            [
                "s3.bucket: String should match pattern '^[a-z0-9][a-z0-9.-]+[a-z0-9]$', got 'Bad_Bucket'"
            ],
        ),
    ],
    ids=[
        "missing",
        "bad-id-and-unknown-key",
        "out-of-range",
        "secret-in-file",
        "bad-env",
        "bad-bucket",
    ],
)
def test_agent_config_errors_name_their_keys(
    tmp_path: Path, text: str, env: dict[str, str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(AgentConfig, _write(tmp_path, text), env_prefix="FOOTFALL_AGENT", environ=env)
    assert info.value.errors == expected


def test_aggregator_config_errors(tmp_path: Path) -> None:
    text = (
        '[store]\nurl = "postgresql://u:pw@db/x"\n'
        '[[sites]]\nid = "a"\ntimezone = "Mars/Olympus"\n'
        '[[sites]]\nid = "a"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(
            AggregatorConfig, _write(tmp_path, text), env_prefix="FOOTFALL_AGGREGATOR", environ={}
        )
    assert info.value.errors == [
        "store.url: must not contain a password; set store.password through the environment or "
        "store.password_file, got 'postgresql://u:***@db/x'",
        "sites.0.timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin), "
        "got 'Mars/Olympus'",
    ]


def test_validate_config_cli_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, 'site = "s"\nspot = "p p"\n[mqtt]\nport = 0\n')
    result = runner.invoke(agent_app, ["validate-config", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output == (
        f"{path}: invalid configuration\n"
        "  spot: 'p p' is not a valid id: use 1-32 characters of letters, digits, '-' or '_', "
        "starting with a letter or digit, got 'p p'\n"
        "  agent: Field required\n"
        "  mqtt.port: Input should be greater than or equal to 1, got 0\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("site = [unclosed\n", "not valid TOML: "),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_validate_config_cli_unreadable_files(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "agent.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    result = runner.invoke(agent_app, ["validate-config", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"{path}: invalid configuration\n  {message}")


def test_validate_config_says_which_mode_runs(tmp_path: Path) -> None:
    for mode, words in (("person", "bodies are tracked"), ("face", "faces are tracked")):
        path = tmp_path / f"{mode}.toml"
        path.write_text(f'site = "s"\nspot = "p"\nagent = "a"\nmode = "{mode}"\n', encoding="utf-8")
        result = runner.invoke(agent_app, ["validate-config", "--config", str(path)])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1].startswith(f"mode: {mode} - {words}")


def test_validate_config_cli_accepts_good_files() -> None:
    # The examples name files under /etc that only a deployed machine has.
    for app, name in (
        (agent_app, "agent.example.toml"),
        (aggregator_app, "aggregator.example.toml"),
    ):
        result = runner.invoke(
            app, ["validate-config", "--no-file-checks", "--config", str(EXAMPLES / name)]
        )
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == f"{EXAMPLES / name}: ok"


def test_validate_config_cli_names_every_file_the_examples_need() -> None:
    result = runner.invoke(
        agent_app, ["validate-config", "--config", str(EXAMPLES / "agent.example.toml")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: mqtt.ca_file /etc/footfall-agent/ca.crt: cannot read it: No such file or "
        "directory\n"
        "error: mqtt.password_file /etc/footfall-agent/mqtt.password: cannot read it: No such "
        "file or directory\n"
        "error: s3.secret_access_key_file /etc/footfall-agent/s3.secret: cannot read it: No such "
        "file or directory\n"
    )


IDS = 'site = "s"\nspot = "p"\nagent = "a"\n'


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ('[mqtt]\nport = "23013"\n', {}, "mqtt.port: Input should be a valid integer, got '23013'"),
        ('[mqtt]\ntls = "yes"\n', {}, "mqtt.tls: Input should be a valid boolean, got 'yes'"),
        ('[mqtt]\ntls = "off"\n', {}, "mqtt.tls: Input should be a valid boolean, got 'off'"),
        ("[mqtt]\ntls = 1\n", {}, "mqtt.tls: Input should be a valid boolean, got 1"),
        (
            '[delivery]\nheartbeat_seconds = "60"\n',
            {},
            "delivery.heartbeat_seconds: Input should be a valid number, got '60'",
        ),
        (
            "[outbox]\nmax_bytes = 1.5e9\n",
            {},
            "outbox.max_bytes: Input should be a valid integer, got 1500000000.0",
        ),
        (
            "[counting]\nhysteresis = inf\n",
            {},
            "counting.hysteresis: Input should be a finite number, got inf",
        ),
        ("config_version = 2\n", {}, "config_version: Input should be a valid string, got 2"),
        (
            "",
            {"FOOTFALL_AGENT__MQTT__TLS": "yes"},
            "mqtt.tls: not JSON: in the environment, numbers, true/false, lists and sections are "
            "written as JSON (e.g. 8883, true, [1, 2]), got 'yes' (from FOOTFALL_AGENT__MQTT__TLS)",
        ),
        (
            "",
            {"FOOTFALL_AGENT__MQTT__PORT": '"1884"'},
            "mqtt.port: Input should be a valid integer, got '1884' (from "
            "FOOTFALL_AGENT__MQTT__PORT)",
        ),
        (
            "",
            {"FOOTFALL_AGENT__CLASSIFIER__FLIP_AVERAGE": "1"},
            "classifier.flip_average: Input should be a valid boolean, got 1 (from "
            "FOOTFALL_AGENT__CLASSIFIER__FLIP_AVERAGE)",
        ),
    ],
    ids=[
        "port-as-text",
        "yes",
        "off",
        "one-for-true",
        "number-as-text",
        "float-for-int",
        "infinity",
        "number-for-text",
        "env-yes",
        "env-quoted-number",
        "env-one-for-true",
    ],
)
def test_values_are_never_coerced(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            AgentConfig, _write(tmp_path, IDS + text), env_prefix="FOOTFALL_AGENT", environ=env
        )
    assert info.value.errors == [expected]


def test_environment_values_are_json_unless_the_key_is_text(tmp_path: Path) -> None:
    env = {
        "FOOTFALL_AGENT__MQTT__PORT": "1884",
        "FOOTFALL_AGENT__MQTT__TLS": "false",
        "FOOTFALL_AGENT__MQTT__HOST": "1234",  # text: a host may well look like a number
        "FOOTFALL_AGENT__MQTT__PROTOCOL": "3.1.1",
        "FOOTFALL_AGENT__MQTT__CA_FILE": "/etc/ca.crt",
        "FOOTFALL_AGENT__CONFIG_VERSION": "7",
        "FOOTFALL_AGENT__COUNTING__LINE": "[[0.25, 0], [0.25, 1]]",
        "FOOTFALL_AGENT__HEALTH__PORT": "null",
        "FOOTFALL_AGENT__DELIVERY__HEARTBEAT_SECONDS": "30",
        "FOOTFALL_AGENT__S3": '{"bucket": "crops", "region": "eu-west-1"}',
    }
    cfg = load_config(AgentConfig, _write(tmp_path, IDS), env_prefix="FOOTFALL_AGENT", environ=env)
    assert cfg.mqtt is not None and cfg.s3 is not None
    assert (cfg.mqtt.port, cfg.mqtt.tls, cfg.mqtt.host) == (1884, False, "1234")
    assert (cfg.mqtt.protocol.value, cfg.mqtt.ca_file) == ("3.1.1", Path("/etc/ca.crt"))
    assert cfg.config_version == "7" and cfg.counting.line == ((0.25, 0.0), (0.25, 1.0))
    assert cfg.health.port is None and cfg.delivery.heartbeat_seconds == 30.0
    assert (cfg.s3.bucket, cfg.s3.region) == ("crops", "eu-west-1")


def test_toml_times_and_integers_for_numbers_are_what_they_say(tmp_path: Path) -> None:
    text = '[[sites]]\nid = "a"\ndeliver_at = 06:30:00\n[[sites]]\nid = "b"\ndeliver_at = "07:15"\n'
    text += "[fleet]\nheartbeat_interval_seconds = 30\n"
    cfg = load_config(
        AggregatorConfig, _write(tmp_path, text), env_prefix="FOOTFALL_AGGREGATOR", environ={}
    )
    assert [s.deliver_at.isoformat() for s in cfg.sites] == ["06:30:00", "07:15:00"]
    assert cfg.fleet.heartbeat_interval_seconds == 30.0


def test_mqtt_3_1_1_is_refused_when_only_the_puback_would_confirm() -> None:
    from edge_agent.config import AgentConfig

    base = {"site": "s", "spot": "p", "agent": "a", "mqtt": {"protocol": "3.1.1", "tls": False}}
    assert AgentConfig.model_validate(base).delivery.confirm.value == "receipt"
    with pytest.raises(
        ValueError, match=re.escape("protocol '3.1.1' with delivery.confirm = 'broker'")
    ):
        AgentConfig.model_validate({**base, "delivery": {"confirm": "broker"}})


def test_a_section_made_by_the_environment_alone_says_so(tmp_path: Path) -> None:
    """An operator's mqtt.toml on a machine whose environment holds the aggregator's S3
    secret: the [s3] section the variable makes lacks its other keys, and says why it is there."""
    text = '[mqtt]\nhost = "broker"\nusername = "ops"\n'
    env = {"FOOTFALL_AGGREGATOR__S3__SECRET_ACCESS_KEY": "x" * 40}
    with pytest.raises(ConfigError) as info:
        load_config(
            AggregatorConfig, _write(tmp_path, text), env_prefix="FOOTFALL_AGGREGATOR", environ=env
        )
    assert info.value.errors == [
        "s3.bucket: Field required (the file has no [s3] section: it comes from "
        "FOOTFALL_AGGREGATOR__S3__SECRET_ACCESS_KEY)"
    ]
    # A section the file has keeps the plain message.
    with pytest.raises(ConfigError) as info:
        load_config(
            AggregatorConfig,
            _write(tmp_path, text + '[s3]\nendpoint_url = "http://s3"\n'),
            env_prefix="FOOTFALL_AGGREGATOR",
            environ=env,
        )
    assert info.value.errors == ["s3.bucket: Field required"]

"""No secret in any message: passwords in URLs, in JSON environment values and secrets the
process has read are masked in configuration errors, store errors, CLI output and logs."""

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app as aggregator_app
from aggregator.config import AggregatorConfig
from aggregator.errors import StoreError
from aggregator.store import EventStore
from edge_agent.cli import app as agent_app
from edge_agent.vision.sources import LiveSource
from footfall.redact import RedactingFilter, forget_secrets, redact, remember_secret
from footfall.settings import ConfigError, load_config, read_secret
from tests.unit.test_sources import FakeCapture

runner = CliRunner()
SECRET = "s3cret-pw"
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: refused at once


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@db/x", "postgresql://u:***@db/x"),
        ("postgresql+psycopg://u:p@ss@h/db", "postgresql+psycopg://u:***@h/db"),
        (
            "postgresql://u@h/db?sslmode=require&password=qu3ry",
            "postgresql://u@h/db?sslmode=require&password=***",
        ),
        ("host=h password='a b' user=u", "host=h password='***' user=u"),
        ("rtsp://admin:campass@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("secret_access_key=AKIA0123", "secret_access_key=***"),
        ("http://example.com/a@b and a=b", "http://example.com/a@b and a=b"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_redact_masks_passwords_in_urls_and_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_remembered_secrets_are_masked_wherever_they_appear() -> None:
    assert redact(f"FATAL: password {SECRET} rejected") == f"FATAL: password {SECRET} rejected"
    remember_secret(SECRET)
    remember_secret("abc")  # too short to mask safely: ordinary words would go too
    assert (
        redact(f"FATAL: password {SECRET} rejected (abc)") == "FATAL: password *** rejected (abc)"
    )


def test_reading_a_secret_remembers_it(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(f"{SECRET}\n", encoding="utf-8")
    assert read_secret(None, path, "the password") == SECRET
    assert redact(f"got {SECRET}") == "got ***"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            '[store]\nurl = "postgresql://u:s3cret-pw@db/x"\n',
            {},
            "store.url: must not contain a password; set store.password through the environment "
            "or store.password_file, got 'postgresql://u:***@db/x'",
        ),
        (
            '[store]\nurl = "postgresql://u@db/x?password=s3cret-pw"\n',
            {},
            "store.url: must not contain a password; set store.password through the environment "
            "or store.password_file, got 'postgresql://u@db/x?password=***'",
        ),
        (
            "",
            {"FOOTFALL_AGGREGATOR__STORE__URL": "postgresql://u:s3cret-pw@db/x"},
            "store.url: must not contain a password; set store.password through the environment "
            "or store.password_file, got 'postgresql://u:***@db/x' (from "
            "FOOTFALL_AGGREGATOR__STORE__URL)",
        ),
        (
            "",
            {"FOOTFALL_AGGREGATOR__STORE": '{"url": "postgresql://u:s3cret-pw@db/x"}'},
            "store.url: must not contain a password; set store.password through the environment "
            "or store.password_file, got 'postgresql://u:***@db/x' (from "
            "FOOTFALL_AGGREGATOR__STORE)",
        ),
        (
            "",
            {
                "FOOTFALL_AGGREGATOR__MQTT": '{"host": "b", "password": "s3cret-pw", '
                '"reconnect_min_seconds": 10, "reconnect_max_seconds": 1}'
            },
            "mqtt: reconnect_max_seconds must be >= reconnect_min_seconds, got {'host': 'b', "
            "'password': '***', 'reconnect_min_seconds': 10, 'reconnect_max_seconds': 1} (from "
            "FOOTFALL_AGGREGATOR__MQTT)",
        ),
        (
            "",
            {"FOOTFALL_AGGREGATOR__MQTT": '["password", "s3cret-pw"]'},
            "mqtt: Input should be an object (from FOOTFALL_AGGREGATOR__MQTT)",
        ),
        (
            "",
            {"FOOTFALL_AGGREGATOR__MQTT": '{"host": "b", "password": "s3cret-pw"'},
            "mqtt: not JSON: in the environment, numbers, true/false, lists and sections are "
            "written as JSON (e.g. 8883, true, [1, 2]) (from FOOTFALL_AGGREGATOR__MQTT)",
        ),
        (
            "",
            {"FOOTFALL_AGGREGATOR__MQTT": '{"host": "b", "password": 123456789}'},
            "mqtt.password: Input should be a valid string (from FOOTFALL_AGGREGATOR__MQTT)",
        ),
    ],
    ids=[
        "url-in-file",
        "url-query-in-file",
        "url-in-env",
        "url-in-json-env",
        "json-env-section",
        "json-env-list",
        "broken-json-env",
        "secret-of-wrong-type",
    ],
)
def test_config_errors_never_show_a_secret(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "agg.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(AggregatorConfig, path, env_prefix="FOOTFALL_AGGREGATOR", environ=env)
    assert info.value.errors == [expected]
    assert SECRET not in str(info.value) and "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        (
            f"postgresql+psycopg://u@{UNREACHABLE}/db?password={SECRET}",
            None,
            f"cannot open postgresql+psycopg://u@{UNREACHABLE}/db?password=***: connection "
            'failed: connection to server at "127.0.0.1", port 1 failed: Connection refused; '
            "check store.url (or --store), the password and that the database is running",
        ),
        (
            f"postgresql+psycopg://u:{SECRET}@{UNREACHABLE}/db",
            None,
            f"cannot open postgresql+psycopg://u:***@{UNREACHABLE}/db: connection failed: "
            'connection to server at "127.0.0.1", port 1 failed: Connection refused; check '
            "store.url (or --store), the password and that the database is running",
        ),
        (
            f"postgresql+psycopg://u@{UNREACHABLE}/db",
            SECRET,
            f"cannot open postgresql+psycopg://u@{UNREACHABLE}/db: connection failed: "
            'connection to server at "127.0.0.1", port 1 failed: Connection refused; check '
            "store.url (or --store), the password and that the database is running",
        ),
        (
            f"postgresql://u:{SECRET}@127.0.0.1:notaport/db",
            None,
            "not a database URL: invalid literal for int() with base 10: 'notaport'",
        ),
        (
            f"postgres ql://u:{SECRET}@h/db",
            None,
            "not a database URL: Could not parse SQLAlchemy URL from given URL string",
        ),
        (
            f"mysql://u:{SECRET}@h/db",
            None,
            "unsupported database 'mysql': use sqlite or postgresql",
        ),
    ],
    ids=["query", "inline", "separate", "bad-port", "unparseable", "other-backend"],
)
def test_store_errors_never_show_a_password(url: str, password: str | None, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        EventStore.open(url, password=password)
    assert str(info.value) == expected


def test_cli_store_option_with_a_password_is_refused_without_echo() -> None:
    for url in (f"postgresql://u:{SECRET}@h/db", f"postgresql://u@h/db?password={SECRET}"):
        result = runner.invoke(aggregator_app, ["db", "status", "--store", url])
        assert (result.exit_code, result.output) == (
            2,
            "error: --store: must not contain a password; set store.password through the "
            "environment or store.password_file\n",
        )


def test_cli_store_error_with_a_password_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "agg.toml"
    config.write_text(f'[store]\nurl = "postgresql+psycopg://u@{UNREACHABLE}/db"\n')
    result = runner.invoke(
        aggregator_app,
        ["db", "status", "--config", str(config)],
        env={"FOOTFALL_AGGREGATOR__STORE__PASSWORD": SECRET},
    )
    assert (result.exit_code, result.output) == (
        1,
        f"error: cannot open postgresql+psycopg://u@{UNREACHABLE}/db: connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused; check store.url '
        "(or --store), the password and that the database is running\n",
    )


def test_cli_validate_config_masks_a_json_environment_value(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('site = "s"\nspot = "p"\nagent = "a"\n')
    value = '{"host": "b", "password": "s3cret-pw", "reconnect_min_seconds": 9, "reconnect_max_seconds": 1}'
    result = runner.invoke(
        agent_app, ["validate-config", "--config", str(config)], env={"FOOTFALL_AGENT__MQTT": value}
    )
    assert (result.exit_code, result.output) == (
        2,
        f"{config}: invalid configuration\n"
        "  mqtt: reconnect_max_seconds must be >= reconnect_min_seconds, got {'host': 'b', "
        "'password': '***', 'reconnect_min_seconds': 9, 'reconnect_max_seconds': 1} (from "
        "FOOTFALL_AGENT__MQTT)\n",
    )


def test_log_lines_are_redacted_by_the_handler() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    remember_secret(SECRET)
    try:
        logger.warning("store unavailable (%s)", f"postgresql://u:{SECRET}@h/db")
        logger.warning("broker said: bad password %s", SECRET)
        try:
            raise RuntimeError(f"connect failed with password={SECRET}")
        except RuntimeError:
            logger.exception("giving up")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = stream.getvalue()
    assert SECRET not in text
    lines = text.splitlines()
    assert lines[:3] == [
        "store unavailable (postgresql://u:***@h/db)",
        "broker said: bad password ***",
        "giving up",
    ]
    assert lines[-1] == "RuntimeError: connect failed with password=***"


def test_a_camera_url_is_logged_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    stop = threading.Event()
    source = LiveSource(
        "rtsp://admin:campass@10.0.0.5/stream1",
        reconnect_min_seconds=0.01,
        capture_factory=lambda _target: FakeCapture(opened=False, frames=0),
        on_reconnect=lambda n, _delay: stop.set(),
    )
    with caplog.at_level(logging.WARNING):
        list(source.frames(stop))
    assert [r.getMessage() for r in caplog.records] == [
        "video source rtsp://admin:***@10.0.0.5/stream1 cannot be opened; reopening in 0.0 s"
    ]

"""Start-up checks of the delivery side's files and credentials: one line naming the setting and
the file; complete, readable settings pass."""

from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.delivery.preflight import SetupError, check_broker_files, check_store_credentials
from footfall.connections import BrokerSettings, ObjectStoreSettings
from footfall.preflight import check_directory, check_output_file, check_writable_directory
from infra.devservices.ca import make_test_ca


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    make_test_ca(directory)
    return directory / "ca.crt"


def test_readable_broker_files_pass(tmp_path: Path, ca_file: Path) -> None:
    password = tmp_path / "mqtt.password"
    password.write_text("s3cret\n", encoding="utf-8")
    check_broker_files(BrokerSettings(ca_file=ca_file, username="a", password_file=password))


@pytest.mark.parametrize(
    ("setting", "content", "message"),
    [
        (
            "password_file",
            None,
            "mqtt.password_file {path}: cannot read it: No such file or directory",
        ),
        ("password_file", " \n", "mqtt.password_file {path}: the file is empty"),
        ("password_file", "dir", "mqtt.password_file {path}: cannot read it: Is a directory"),
        ("ca_file", None, "mqtt.ca_file {path}: cannot read it: No such file or directory"),
        (
            "ca_file",
            "not a certificate\n",
            "mqtt.ca_file {path}: no CA certificate in it (PEM expected): "
            "NO_CERTIFICATE_OR_CRL_FOUND",
        ),
    ],
)
def test_an_unusable_broker_file_is_named(
    tmp_path: Path, setting: str, content: str | None, message: str
) -> None:
    path = tmp_path / "the-file"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    settings = BrokerSettings.model_validate({setting: path, "username": "a"})
    with pytest.raises(SetupError) as caught:
        check_broker_files(settings)
    assert str(caught.value) == message.format(path=path)


def test_without_tls_the_ca_file_is_not_read(tmp_path: Path) -> None:
    check_broker_files(BrokerSettings(tls=False, ca_file=tmp_path / "missing.crt"))


def _s3(**fields: object) -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate({"bucket": "crops", **fields})


def test_complete_s3_credentials_pass(tmp_path: Path) -> None:
    secret = tmp_path / "s3.secret"
    secret.write_text("abc\n", encoding="utf-8")
    check_store_credentials(_s3(access_key_id="AK", secret_access_key_file=secret))
    check_store_credentials(_s3(access_key_id="AK", secret_access_key="from-env"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"access_key_id": "AK"},
            "s3.access_key_id is set but there is no secret key: set "
            "FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY or s3.secret_access_key_file",
        ),
        (
            {"secret_access_key": "x"},
            "s3: a secret key is given but s3.access_key_id is not set",
        ),
        (
            {"access_key_id": "AK", "secret_access_key_file": "MISSING"},
            "s3.secret_access_key_file MISSING: cannot read it: No such file or directory",
        ),
    ],
)
def test_incomplete_s3_credentials_are_named(
    tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    missing = tmp_path / "s3.secret"
    fields = {k: str(missing) if v == "MISSING" else v for k, v in fields.items()}
    with pytest.raises(SetupError) as caught:
        check_store_credentials(_s3(**fields))
    assert str(caught.value) == message.replace("MISSING", str(missing))


def test_no_s3_credentials_anywhere_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The AWS default chain, emptied: no variables, no shared files, no instance metadata.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(SetupError) as caught:
        check_store_credentials(_s3())
    assert str(caught.value) == (
        "s3: no credentials: set s3.access_key_id and FOOTFALL_AGENT__S3__SECRET_ACCESS_KEY "
        "(or s3.secret_access_key_file), or provide AWS credentials in the environment"
    )
    # The same chain with credentials in the environment is enough.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    check_store_credentials(_s3())


@pytest.mark.parametrize(
    ("check", "make", "path", "message"),
    [
        (check_writable_directory, None, "new/deeper", None),
        (check_writable_directory, "dir", "d", None),
        (
            check_writable_directory,
            "file",
            "f/sub",
            "data_dir {tmp}/f/sub: {tmp}/f is not a directory; correct data_dir",
        ),
        (
            check_writable_directory,
            None,
            "/proc/forbidden/data",
            "data_dir /proc/forbidden/data: cannot write in /proc: No such file or directory; "
            "set data_dir to a place this user may write",
        ),
        (check_output_file, None, "out/r.xlsx", None),
        (
            check_output_file,
            "dir",
            "d",
            "data_dir {tmp}/d: is a directory; give the name of a file in it",
        ),
        (check_directory, "dir", "d", None),
        (
            check_directory,
            None,
            "d",
            "data_dir {tmp}/d: no such directory; create it or correct data_dir",
        ),
        (
            check_directory,
            "file",
            "d",
            "data_dir {tmp}/d: not a directory; give a directory in data_dir",
        ),
    ],
)
def test_directories_and_output_files(
    tmp_path: Path,
    check: Callable[[str, Path], None],
    make: str | None,
    path: str,
    message: str | None,
) -> None:
    target = tmp_path / path
    if make == "dir":
        target.mkdir()
    elif make == "file":  # a file where the path's first directory should be
        (tmp_path / path.split("/")[0]).write_text("x", encoding="utf-8")
    before = sorted(tmp_path.rglob("*"))
    if message is None:
        check("data_dir", target)
    else:
        with pytest.raises(SetupError) as caught:
            check("data_dir", target)
        assert str(caught.value) == message.format(tmp=tmp_path)
    assert sorted(tmp_path.rglob("*")) == before  # a check leaves nothing behind

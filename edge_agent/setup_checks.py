"""Every file an agent configuration names, checked for ``validate-config``: the delivery side's
(the data directory, the broker's CA and password files, the S3 credentials: the same checks
the agent runs before it starts, :mod:`edge_agent.delivery.preflight`), the models directory and
download cache, and the video file ``source.url`` may name."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.delivery.preflight import SetupError, delivery_checks
from edge_agent.vision.settings import video_file
from footfall.preflight import Check, check_directory, check_writable_directory, collect, reason


def all_checks(config: AgentConfig) -> list[Check]:
    checks = delivery_checks(config)
    models = config.models
    if models.dir is not None:
        models_dir = models.dir
        checks.append(lambda: check_directory("models.dir", models_dir))
    if models.cache_dir is not None and models.allow_download:
        cache_dir = models.cache_dir
        checks.append(lambda: check_writable_directory("models.cache_dir", cache_dir))
    url = config.source.url
    path = None if url is None else video_file(url)
    if path is not None:
        source = path
        checks.append(lambda: _check_video_file(source))
    return checks


def problems(config: AgentConfig) -> list[str]:
    """The line of each check that fails, in order."""
    return collect(all_checks(config))


def _check_video_file(path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SetupError(
            f"source.url {path}: cannot read the video file: {reason(exc)}; give a readable "
            "file, a camera index or an rtsp:// or http(s):// URL"
        ) from None

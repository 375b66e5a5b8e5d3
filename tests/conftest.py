"""Shared fixtures: where the shared models and data are, and the real services (tests.services).

Tests that need ../shared (models, labelled faces, clips) get it through FOOTFALL_SHARED_DIR. Where
it is not set they skip with the reason; with FOOTFALL_STRICT=1 (set by .ci/run) they fail instead,
so CI can never silently skip them.
"""

import os
from pathlib import Path

import pytest

pytest_plugins = (
    ["tests.services"] if (Path(__file__).parent / "services.py").exists() else []
)  # TEMP

SHARED_ENV = "FOOTFALL_SHARED_DIR"
STRICT_ENV = "FOOTFALL_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip the test, or fail it under the strict flag."""
    if strict():
        pytest.fail(f"{reason} (and {STRICT_ENV}=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    value = os.environ.get(SHARED_ENV)
    if not value:
        missing(f"{SHARED_ENV} is not set: point it at the shared models/data/video folder")
    path = Path(value or ".")
    if not (path / "models").is_dir():
        missing(f"{SHARED_ENV}={path} has no models/ folder")
    return path


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def torch_available() -> None:
    """Tests that train or export need PyTorch (the ``train`` extra)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        missing("PyTorch is not installed: install the 'train' extra (pip install -e '.[train]')")

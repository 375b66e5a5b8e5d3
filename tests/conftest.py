"""Shared fixtures: where the shared models and data are, and the real services (tests.services).

Tests that need ../shared (models, labelled faces, clips) get it through FOOTFALL_SHARED_DIR. Where
it is not set they skip with the reason; with FOOTFALL_STRICT=1 (set by .ci/run) they fail instead,
so CI can never silently skip them.
"""

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.services"]

SHARED_ENV = "FOOTFALL_SHARED_DIR"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    # Imported here, not at the top: tests.services is registered as a plugin below and must be
    # imported by pytest first so its asserts are rewritten.
    from tests.services import unavailable as missing

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
    from tests.services import unavailable as missing

    try:
        import torch  # noqa: F401
    except ImportError:
        missing("PyTorch is not installed: install the 'train' extra (pip install -e '.[train]')")

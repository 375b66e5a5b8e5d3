"""Fixtures shared by the unit tests of the store and what reads it."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.store import EventStore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """An empty event store on SQLite and, with the services, on real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_database").url
    s = EventStore.open(url)
    yield s
    s.close()

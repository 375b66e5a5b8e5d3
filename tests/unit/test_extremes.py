"""Nothing validation accepts makes a later command fail: records at the edges of every range
of the contract go through ingest into the store, then through report, fleet, dead-letters and
the metrics. On SQLite, and on PostgreSQL where the real service is available."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.batching import Delivery, IngestLoop
from aggregator.cli import app
from aggregator.intake import Inbound
from aggregator.store import EventStore
from footfall.contract import AgentState
from footfall.contract.examples import example_event, example_status

runner = CliRunner()
PREFIX = "footfall/v1"
LAST = datetime(2099, 12, 31, 23, 59, 50, tzinfo=UTC)
FIRST = datetime(2000, 1, 1, tzinfo=UTC)


class NoAcks:
    def ack(self, tokens: object) -> int:
        return 0


def _payloads() -> list[tuple[str, bytes]]:
    topic = f"{PREFIX}/site-a/spot-1/agent-1"
    late = example_event(first_seen=LAST, dwell_seconds=9.999, track_id=2**63 - 1).model_copy(
        update={"crop_note": "ℵ" * 300}
    )
    early = example_event(first_seen=FIRST, dwell_seconds=0.0, with_crop=False, age_years=120.0)
    status = json.loads(example_status(sent_at=LAST).to_json())
    status["stats"].update(
        {name: 2**63 - 1 for name in ("frames_in", "frames_dropped", "outbox_depth")}
        | {"fps": 1e308, "uptime_seconds": 1e308}
    )
    offline = example_status(
        state=AgentState.OFFLINE, sent_at=FIRST + timedelta(hours=1), agent="agent-2"
    )
    return [
        (f"{topic}/events", late.to_json()),
        (f"{topic}/events", early.to_json()),
        (f"{topic}/heartbeat", json.dumps(status).encode()),
        (f"{PREFIX}/site-a/spot-1/agent-2/status", offline.to_json()),
        (f"{topic}/events", b'{"track_id": 1e400}'),  # a dead letter
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_access(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL without password, password) of an empty store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", ""
    else:
        db = request.getfixturevalue("pg_database")
        yield f"postgresql+psycopg://{db.user}@{db.host}:{db.port}/{db.name}", db.server.password


def test_the_edges_of_the_contract_survive_every_later_command(
    store_access: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, password = store_access
    if password:
        monkeypatch.setenv("FOOTFALL_AGGREGATOR__STORE__PASSWORD", password)
    store = EventStore.open(url, password=password or None)
    try:
        loop = IngestLoop(store, NoAcks(), prefix=PREFIX, max_payload_bytes=16384, keep_bytes=4096)
        now = datetime.now(UTC)
        loop.process(
            [Delivery(Inbound(t, p, now, "mqtt:a"), None) for t, p in _payloads()],
            threading.Event(),
        )
        c = loop.counters
        assert (c.events_stored, c.statuses_stored, c.rejected) == (2, 2, {"invalid": 1})
    finally:
        store.close()
    for zone, day in (
        ("UTC", "2099-12-31"),
        ("Pacific/Kiritimati", "2099-12-31"),
        ("Etc/GMT+12", "2099-12-31"),
        ("UTC", "2000-01-01"),
        ("Pacific/Kiritimati", "2000-01-01"),
    ):
        out = tmp_path / f"{zone.replace('/', '-')}-{day}.xlsx"
        args = ["report", "--site", "site-a", "--store", url, "--out", str(out)]
        result = runner.invoke(app, [*args, "--timezone", zone, "--date", day])
        assert result.exit_code == 0, (zone, day, result.output)
        assert out.exists()
    result = runner.invoke(app, ["fleet", "--store", url])
    assert result.exit_code in (0, 3), result.output
    assert "agent-1" in result.output and "agent-2" in result.output
    result = runner.invoke(app, ["fleet", "--store", url, "--silent-after", "1e300d"])
    assert (result.exit_code, result.output) == (
        2,
        "error: --silent-after: '1e300d' is not a duration (use e.g. 90s, 5m, 2h)\n",
    )
    result = runner.invoke(app, ["fleet", "--store", url, "--silent-after", "99999999999d"])
    assert (result.exit_code, result.output) == (
        2,
        "error: --silent-after: '99999999999d' is longer than any duration that can be used\n",
    )
    result = runner.invoke(app, ["dead-letters", "--store", url])
    assert result.exit_code == 0 and result.output.startswith("1 dead letters: invalid 1")
    assert timedelta(0) < now - FIRST


def test_the_metrics_render_the_largest_counters(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from aggregator.metrics import AggregatorCollector, aggregator_registry

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = EventStore.open(url)
    try:
        loop = IngestLoop(store, NoAcks(), prefix=PREFIX, max_payload_bytes=16384, keep_bytes=4096)
        loop.process(
            [Delivery(Inbound(t, p, datetime.now(UTC), "m"), None) for t, p in _payloads()],
            threading.Event(),
        )

        class Ingest:
            counters = loop.counters
            connected = True
            receipts_sent = 2**63 - 1

            class settings:  # noqa: N801 - stands in for IngestSettings
                client_id = "agg-1"
                shared_group = "g"

        collector = AggregatorCollector(Ingest(), store, silent_after=timedelta(minutes=2))  # type: ignore[arg-type]
        text = generate_latest(aggregator_registry(collector)).decode()
    finally:
        store.close()
    assert 'footfall_aggregator_dead_letters_total{reason="invalid"} 1.0' in text

"""The aggregator's Prometheus metrics, read at scrape time from the ingest counters, the broker
connection, the nightly deliveries and the store's fleet table.

Every name starts with ``footfall_aggregator_``; counters end in ``_total``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector, CollectorRegistry

from aggregator.fleet import Health, health
from footfall import __version__
from footfall.metrics import Families, registry_of

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from aggregator.ingest import MqttIngest
    from aggregator.store import EventStore

log = logging.getLogger(__name__)

M = Families("footfall_aggregator_")


@dataclass
class DeliveryCounts:
    """Nightly delivery results of this process, by outcome ("ok" / "failed")."""

    results: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool) -> None:
        with self.lock:
            self.results["ok" if ok else "failed"] += 1


class AggregatorCollector(Collector):
    def __init__(
        self,
        ingest: MqttIngest,
        store: EventStore,
        *,
        silent_after: timedelta,
        deliveries: DeliveryCounts | None = None,
    ) -> None:
        self.ingest = ingest
        self.store = store
        self.silent_after = silent_after
        self.deliveries = deliveries

    def collect(self) -> Iterator[Metric]:
        yield M.info(
            "What this aggregator process runs",
            {
                "software_version": __version__,
                "client_id": self.ingest.settings.client_id,
                "shared_group": self.ingest.settings.shared_group,
            },
        )
        c = self.ingest.counters
        yield M.gauge("mqtt_connected", "1 while connected to the broker", self.ingest.connected)
        yield M.counter("messages_received", "Messages taken from the broker", c.received)
        yield M.counter("events_stored", "Events stored for the first time", c.events_stored)
        yield M.counter(
            "events_duplicate",
            "Events received again and ignored (by event id)",
            c.events_duplicate,
        )
        yield M.counter(
            "statuses_stored", "Status and heartbeat messages stored", c.statuses_stored
        )
        yield M.counters_by(
            "dead_letters",
            "Messages rejected into the dead letters, by reason",
            "reason",
            dict(sorted(c.rejected.items())),
        )
        yield M.counter("batches", "Store transactions committed", c.batches)
        yield M.counter("acks", "Messages acknowledged to the broker after their commit", c.acked)
        yield M.counter(
            "acks_skipped", "Acknowledgements skipped: their connection was gone", c.ack_skipped
        )
        yield M.counter(
            "receipts_sent",
            "Receipts sent to agents after a commit (one per agent per batch)",
            self.ingest.receipts_sent,
        )
        yield M.counter(
            "store_retries", "Batches retried because the store was unavailable", c.store_retries
        )
        yield M.counters_by(
            "config_results",
            "Agents' answers to remote configurations",
            "outcome",
            {outcome: c.config_results.get(outcome, 0) for outcome in ("applied", "rejected")},
        )
        if self.deliveries is not None:
            with self.deliveries.lock:
                results = {r: self.deliveries.results.get(r, 0) for r in ("ok", "failed")}
            yield M.counters_by(
                "deliveries", "Nightly workbook deliveries by this process", "result", results
            )
        try:
            agents = self.store.agents(None)
        except Exception as exc:  # the store may be down; the other metrics still count
            log.warning("fleet metrics unavailable: %s", exc)
            return
        now = datetime.now(UTC)
        verdicts = Counter(health(a, now, self.silent_after) for a in agents)
        yield M.gauges_by(
            "agents",
            "Agents known to the store, by health",
            "health",
            {verdict.name.lower(): verdicts.get(verdict, 0) for verdict in Health},
        )


def aggregator_registry(collector: AggregatorCollector) -> CollectorRegistry:
    return registry_of(collector)

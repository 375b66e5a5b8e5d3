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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from aggregator.fleet import Health, health
from footfall import __version__

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from aggregator.ingest import MqttIngest
    from aggregator.store import EventStore

log = logging.getLogger(__name__)

P = "footfall_aggregator_"


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
        info = InfoMetricFamily(P[:-1], "What this aggregator process runs")
        info.add_metric(
            [],
            {
                "software_version": __version__,
                "client_id": self.ingest.settings.client_id,
                "shared_group": self.ingest.settings.shared_group,
            },
        )
        yield info
        c = self.ingest.counters
        yield _gauge("mqtt_connected", "1 while connected to the broker", self.ingest.connected)
        yield _counter("messages_received", "Messages taken from the broker", c.received)
        yield _counter("events_stored", "Events stored for the first time", c.events_stored)
        yield _counter(
            "events_duplicate",
            "Events received again and ignored (by event id)",
            c.events_duplicate,
        )
        yield _counter("statuses_stored", "Status and heartbeat messages stored", c.statuses_stored)
        letters = CounterMetricFamily(
            P + "dead_letters",
            "Messages rejected into the dead letters, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(c.rejected.items()):
            letters.add_metric([reason], count)
        yield letters
        yield _counter("batches", "Store transactions committed", c.batches)
        yield _counter("acks", "Messages acknowledged to the broker after their commit", c.acked)
        yield _counter(
            "acks_skipped", "Acknowledgements skipped: their connection was gone", c.ack_skipped
        )
        yield _counter(
            "receipts_sent",
            "Receipts sent to agents after a commit (one per agent per batch)",
            self.ingest.receipts_sent,
        )
        yield _counter(
            "store_retries", "Batches retried because the store was unavailable", c.store_retries
        )
        results = CounterMetricFamily(
            P + "config_results", "Agents' answers to remote configurations", labels=["outcome"]
        )
        for outcome in ("applied", "rejected"):
            results.add_metric([outcome], c.config_results.get(outcome, 0))
        yield results
        if self.deliveries is not None:
            delivered = CounterMetricFamily(
                P + "deliveries", "Nightly workbook deliveries by this process", labels=["result"]
            )
            with self.deliveries.lock:
                for result in ("ok", "failed"):
                    delivered.add_metric([result], self.deliveries.results.get(result, 0))
            yield delivered
        try:
            agents = self.store.agents(None)
        except Exception as exc:  # the store may be down; the other metrics still count
            log.warning("fleet metrics unavailable: %s", exc)
            return
        now = datetime.now(UTC)
        verdicts = Counter(health(a, now, self.silent_after) for a in agents)
        fleet = GaugeMetricFamily(
            P + "agents", "Agents known to the store, by health", labels=["health"]
        )
        for verdict in Health:
            fleet.add_metric([verdict.value.lower()], verdicts.get(verdict, 0))
        yield fleet


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, value=float(value))


def aggregator_registry(collector: AggregatorCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry

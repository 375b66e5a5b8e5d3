"""Wiring: configuration in, a store and a running ingest service out."""

import logging
import threading
from datetime import timedelta

from aggregator.batching import Committer, IngestCounters
from aggregator.config import AggregatorConfig
from aggregator.errors import IngestError
from aggregator.store.open import open_store

log = logging.getLogger(__name__)


def run_service(config: AggregatorConfig, stop: threading.Event) -> IngestCounters:
    """Run the ingest service until ``stop`` is set (with the metrics and health endpoint when
    ``health.port`` is set)."""
    from aggregator.delivery.jobs import nightly_scheduler, register_sites
    from aggregator.ingest import MqttIngest  # paho is only needed here

    if config.mqtt is None:
        raise IngestError("the configuration has no [mqtt] section; the ingest service needs one")
    store = open_store(config.store, config.fleet)
    health_server = None
    worker = None
    try:
        # Commands run without this configuration (report) find the sites' time zones there.
        register_sites(config, store)
        log.info(
            "ingest %s -> %s (group %s)",
            config.mqtt.topic_prefix,
            store.url,
            config.ingest.shared_group,
        )
        from aggregator.commit_worker import CommitWorker, committing_loop

        committer: Committer
        if config.ingest.commit_process:
            worker = CommitWorker(
                config.store, config.fleet, config.ingest, config.mqtt.topic_prefix
            )
            committer = worker
        else:
            # The same committing half the child process runs, here in this process, so both
            # settings apply exactly the same rules (the live time window among them).
            committer = committing_loop(store, config.ingest, config.mqtt.topic_prefix).commit
        ingest = MqttIngest(config.mqtt, config.ingest, store, committer)
        deliveries = None
        if config.health.enabled and config.health.port is not None:
            from aggregator.metrics import (
                AggregatorCollector,
                DeliveryCounts,
                aggregator_registry,
            )
            from footfall.health import HealthServer

            deliveries = DeliveryCounts()
            collector = AggregatorCollector(
                ingest,
                store,
                silent_after=timedelta(seconds=config.fleet.silent_after_seconds),
                deliveries=deliveries,
            )
            try:
                health_server = HealthServer(
                    aggregator_registry(collector),
                    host=config.health.bind,
                    port=config.health.port,
                    ready=lambda: None if ingest.connected else "not connected to the broker",
                ).start()
            except OSError as exc:
                raise IngestError(
                    f"health.port {config.health.port} on {config.health.bind}: {exc.strerror}"
                ) from None
        counts = deliveries
        scheduler = nightly_scheduler(
            config,
            store,
            on_outcome=(lambda o: counts.record(o.ok)) if counts is not None else None,
        )
        if scheduler is not None:
            scheduler.start()
            log.info("nightly delivery scheduled for %s", ", ".join(s.id for s in config.sites))
        try:
            return ingest.run(stop)
        finally:
            if scheduler is not None:
                scheduler.stop()
    finally:
        if health_server is not None:
            health_server.stop()
        if worker is not None:
            worker.close()
        store.close()

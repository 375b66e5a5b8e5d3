"""Delivery throughput and outbox write latency, against the baseline of publishing the same
events straight to the broker without an outbox - all measured in this run, on one real Mosquitto
over TLS, MQTT 5, QoS 1, the same in-flight window.

    .venv/bin/python -m tests.bench.bench_outbox [--events 5000]

Cases:
- baseline: paho publishes the encoded events with the sender's window and waits for every PUBACK;
  no outbox, nothing durable (what the "fire and hope" agents do, but with QoS 1).
- pipeline -> outbox -> broker: a producer thread emits one event at a time into the outbox (as the
  pipeline does) while the sender publishes; timed from the first put to the last PUBACK recorded
  in the outbox. With synchronous=full (the default: fsync per event), normal, and full with puts
  grouped 20 per transaction.
- backlog drain: the outbox already holds the events (the broker was down); the sender alone.

A subscriber (QoS 0, the aggregator's account) holds the events topic throughout: without one
the broker answers "No matching subscribers" and the sender keeps every event. The sender runs in
the broker-confirmed mode (the PUBACK confirms); receipts need an aggregator and are part of the
ingest benchmark.

Outbox write latency is the time one ``put`` (one ``emit``) takes, per event, with and without a
10 KB crop. Numbers only; nothing is asserted. Writes tests/bench/results/outbox.json and
outbox.md and prints them.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_agent.config import Confirmation, Synchronous
from edge_agent.delivery.backoff import Backoff
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.sender import EventSender
from footfall.connections import BrokerSettings
from footfall.contract import PersonEvent
from footfall.contract.topics import AgentAddress, Channel
from footfall.mqtt_link import PahoLink, paho_link_factory
from infra import devservices as ds
from tests.delivery_support import synthetic_events

RESULTS = Path(__file__).parent / "results"
ADDRESS = AgentAddress("site-a", "spot-1", "agent-1")
WINDOW = 100


@dataclass
class Row:
    case: str
    events: int
    seconds: float
    events_per_second: float
    put_p50_ms: float | None = None
    put_p95_ms: float | None = None
    put_p99_ms: float | None = None
    put_max_ms: float | None = None


def _settings(broker: ds.Mosquitto) -> BrokerSettings:
    user = broker.user("agent-1")
    return BrokerSettings.model_validate(
        {
            "host": broker.host,
            "port": broker.tls_port,
            "ca_file": broker.ca_file,
            "username": user.name,
            "password": user.password,
        }
    )


def _subscriber(broker: ds.Mosquitto) -> PahoLink:
    """Someone the broker routes the events to, so that its PUBACKs say Success."""
    user = broker.user("aggregator")
    settings = BrokerSettings.model_validate(
        {
            "host": broker.host,
            "port": broker.tls_port,
            "ca_file": broker.ca_file,
            "username": user.name,
            "password": user.password,
        }
    )
    link = PahoLink(settings, "bench-subscriber")
    link.connect(None)
    link.subscribe(ADDRESS.topic(settings.topic_prefix, Channel.EVENTS), 0)
    return link


def _latency(row: Row, samples: list[float]) -> Row:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    row.put_p50_ms = round(statistics.median(ordered) * 1000, 3)
    row.put_p95_ms, row.put_p99_ms = pct(0.95), pct(0.99)
    row.put_max_ms = round(ordered[-1] * 1000, 3)
    return row


def baseline(settings: BrokerSettings, events: list[PersonEvent]) -> Row:
    topic = ADDRESS.topic(settings.topic_prefix, Channel.EVENTS)
    payloads = [e.to_json() for e in events]
    link = PahoLink(settings, "agent-1", inflight=WINDOW + 4)
    link.connect(None)
    window = min(WINDOW, link.receive_maximum or WINDOW)
    started = time.perf_counter()
    inflight: set[int] = set()
    sent = acked = 0
    while acked < len(payloads):
        while sent < len(payloads) and len(inflight) < window:
            inflight.add(link.publish(topic, payloads[sent], qos=1))
            sent += 1
        for ack in link.poll(0.0 if len(inflight) < window else 0.01):
            inflight.discard(ack.mid)
            acked += 1
    seconds = time.perf_counter() - started
    link.close()
    return Row("baseline: publish without outbox", len(events), seconds, len(events) / seconds)


def _sender(outbox: Outbox, settings: BrokerSettings) -> EventSender:
    return EventSender(
        outbox,
        paho_link_factory(settings, "agent-1", inflight=WINDOW + 4),
        address=ADDRESS,
        topic_prefix=settings.topic_prefix,
        backoff=Backoff(0.1, 1.0),
        window=WINDOW,
        idle_poll_seconds=0.005,
        confirm=Confirmation.BROKER,
    )


def _wait_empty(outbox: Outbox, n: int) -> None:
    while outbox.counters().events_published < n:
        time.sleep(0.002)


def through_outbox(
    settings: BrokerSettings,
    items: list[tuple[PersonEvent, bytes | None]],
    directory: Path,
    *,
    sync: Synchronous,
    batch: int = 1,
) -> Row:
    outbox = Outbox(directory / f"{sync.value}-{batch}.db", synchronous=sync)
    sender = _sender(outbox, settings)
    sender.start()
    while sender.stats().connects == 0:
        time.sleep(0.01)
    latencies: list[float] = []

    def produce() -> None:
        for i in range(0, len(items), batch):
            t0 = time.perf_counter()
            if batch == 1:
                outbox.put(*items[i])
            else:
                outbox.put_many(items[i : i + batch])
            latencies.append((time.perf_counter() - t0) / batch)

    started = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    producer.join()
    _wait_empty(outbox, len(items))
    seconds = time.perf_counter() - started
    sender.stop(1.0)
    outbox.close()
    grouped = f", puts grouped {batch} per transaction" if batch > 1 else ""
    row = Row(
        f"pipeline -> outbox ({sync.value}{grouped}) -> broker",
        len(items),
        seconds,
        len(items) / seconds,
    )
    return _latency(row, latencies)


def backlog_drain(
    settings: BrokerSettings, items: list[tuple[PersonEvent, bytes | None]], directory: Path
) -> Row:
    outbox = Outbox(directory / "backlog.db", synchronous=Synchronous.NORMAL)
    outbox.put_many(items)
    sender = _sender(outbox, settings)
    started = time.perf_counter()
    sender.start()
    _wait_empty(outbox, len(items))
    seconds = time.perf_counter() - started
    sender.stop(1.0)
    outbox.close()
    return Row(
        "backlog drain: outbox -> broker (sender alone)", len(items), seconds, len(items) / seconds
    )


def put_only(
    items: list[tuple[PersonEvent, bytes | None]], directory: Path, sync: Synchronous, label: str
) -> Row:
    outbox = Outbox(directory / f"put-{label}-{sync.value}.db", synchronous=sync)
    latencies = []
    started = time.perf_counter()
    for event, crop in items:
        t0 = time.perf_counter()
        outbox.put(event, crop)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    outbox.close()
    row = Row(f"outbox put only ({sync.value}, {label})", len(items), seconds, len(items) / seconds)
    return _latency(row, latencies)


def _markdown(meta: dict[str, object], rows: list[Row]) -> str:
    lines = [
        "| case | events | seconds | events/s | put p50 ms | put p95 ms | put p99 ms | put max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for r in rows:
        lines.append(
            f"| {r.case} | {r.events:,} | {r.seconds:.2f} | {r.events_per_second:,.0f} | "
            f"{ms(r.put_p50_ms)} | {ms(r.put_p95_ms)} | {ms(r.put_p99_ms)} | {ms(r.put_max_ms)} |"
        )
    return (
        "# Outbox and delivery benchmark\n\n"
        f"`python -m tests.bench.bench_outbox` on {meta['cpus']} CPUs, Python {meta['python']}, "
        f"load average {meta['load_before']} before the run. One Mosquitto 2.0.11 on loopback, "
        f"TLS, MQTT 5, QoS 1, in-flight window {WINDOW} capped by the broker's Receive Maximum "
        "(20); no subscriber. Events are ~1.2 KB of JSON; crops 10 KB. The outbox lives on "
        f"{meta['filesystem']}. Put latencies are per event; for grouped puts, the time of one "
        "20-event transaction divided by 20 (the pipeline itself emits one event at a time).\n\n"
        + "\n".join(lines)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    n = args.events
    items = list(synthetic_events(n, seed=1, address=ADDRESS))
    with_crops = list(
        synthetic_events(min(n, 2000), seed=2, address=ADDRESS, crop_bytes=10_000, exact_size=True)
    )
    meta: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_before": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "filesystem": "ext4 on a virtual disk",
    }
    rows: list[Row] = []

    def step(what: Callable[[], Row]) -> None:
        row = what()
        rows.append(row)
        print(f"{row.case:<70} {row.events_per_second:9,.0f} events/s", flush=True)

    with ds.Mosquitto() as broker, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        settings = _settings(broker)
        subscriber = _subscriber(broker)
        draining = threading.Event()

        def drain() -> None:  # the subscriber's network work, so the broker never blocks on it
            while not draining.is_set():
                subscriber.poll(0.05)
                subscriber.received()

        threading.Thread(target=drain, daemon=True).start()
        events = [e for e, _ in items]
        step(lambda: baseline(settings, events))
        step(lambda: through_outbox(settings, items, directory, sync=Synchronous.FULL))
        step(lambda: through_outbox(settings, items, directory, sync=Synchronous.NORMAL))
        step(lambda: through_outbox(settings, items, directory, sync=Synchronous.FULL, batch=20))
        step(lambda: backlog_drain(settings, items, directory))
        step(lambda: put_only(with_crops, directory, Synchronous.FULL, "10 KB crop"))
        step(lambda: put_only(with_crops, directory, Synchronous.NORMAL, "10 KB crop"))
        draining.set()
        subscriber.close()
    meta["load_after"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "outbox.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    markdown = _markdown(meta, rows)
    (RESULTS / "outbox.md").write_text(markdown)
    print()
    print(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    print(markdown)


if __name__ == "__main__":
    main()

"""Ingest throughput: events/s from the broker to committed rows, for SQLite and PostgreSQL, one
and two aggregator processes, and a row-by-row baseline (one event per transaction) in the same run.

    .venv/bin/python -m tests.bench.bench_ingest [--events 60000] [--baseline-events 3000]

Method: each case first starts its aggregators once so the broker has their sessions, stops them,
publishes the events (the broker queues them for those sessions), then starts the aggregators
again and times the stretch from the first committed row to the last. That measures ingest
(delivery, validation, commit, acknowledgement) rather than the publisher, which from one Python
process manages only a few thousand QoS 1 messages/s here; the publish rate is reported alongside.
Real aggregator processes, the real broker and PostgreSQL, on this machine; numbers only, nothing
is asserted. Writes tests/bench/results/ingest.json and ingest.md.
"""

import argparse
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from aggregator.store import EventStore
from footfall.contract.examples import random_events
from infra import devservices as ds
from tests.ingest_support import (
    AggregatorProcess,
    BrokerAccess,
    Publisher,
    aggregator_config,
    event_messages,
    wait_for,
)

RESULTS = Path(__file__).parent / "results"


@dataclass
class Case:
    backend: str  # sqlite | postgresql
    aggregators: int
    batch_max_events: int
    events: int
    protocol: str = "5"

    @property
    def name(self) -> str:
        mode = "row by row" if self.batch_max_events == 1 else f"batches of {self.batch_max_events}"
        return (
            f"{self.backend}, {self.aggregators} aggregator{'s' if self.aggregators > 1 else ''}, "
            f"{mode}, MQTT {self.protocol}"
        )


@dataclass(frozen=True)
class Target:
    """A store as the aggregators see it (URL without password plus environment) and as this
    process reads it."""

    config_url: str
    read_url: str
    env: dict[str, str]


@dataclass
class Result:
    case: str
    backend: str
    aggregators: int
    batch_max_events: int
    events: int
    events_per_s: float
    seconds: float
    publish_per_s: float
    load_average: float


def run_case(
    case: Case, broker: BrokerAccess, publisher_access: BrokerAccess, target: Target, workdir: Path
) -> Result:
    group = f"bench{random.getrandbits(32):08x}"
    procs = [
        AggregatorProcess(
            _with_protocol(
                aggregator_config(
                    workdir / f"{group}-{i}.toml",
                    broker,
                    target.config_url,
                    client_id=f"{group}-{i}",
                    group=group,
                    extra_ingest=f"batch_max_events = {case.batch_max_events}",
                ),
                case.protocol,
            ),
            workdir / f"{group}-{i}.log",
            target.env,
        )
        for i in range(case.aggregators)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_connected(60)
        proc.stop()

    events = random_events(case.events, rng=random.Random(case.events), spots=("n", "s", "e", "w"))
    publisher = Publisher(publisher_access, f"{group}-pub")
    started = time.perf_counter()
    publisher.publish(event_messages(events))
    publish_per_s = case.events / (time.perf_counter() - started)
    publisher.close()

    store = EventStore.open(target.read_url)
    try:
        for proc in procs:
            proc.start()
        wait_for(lambda: store.count_events() > 0, 120, "the first committed row", step=0.02)
        first_at, first_count = time.perf_counter(), store.count_events()
        wait_for(lambda: store.count_events() >= case.events, 600, "every row", step=0.05)
        seconds = time.perf_counter() - first_at
    finally:
        for proc in procs:
            proc.stop()
        store.close()
    return Result(
        case=case.name,
        backend=case.backend,
        aggregators=case.aggregators,
        batch_max_events=case.batch_max_events,
        events=case.events,
        events_per_s=(case.events - first_count) / seconds,
        seconds=seconds,
        publish_per_s=publish_per_s,
        load_average=os.getloadavg()[0],
    )


def _with_protocol(config: Path, protocol: str) -> Path:
    config.write_text(config.read_text().replace("[mqtt]\n", f'[mqtt]\nprotocol = "{protocol}"\n'))
    return config


def markdown(results: list[Result], note: str) -> str:
    lines = [
        "# Ingest throughput: broker to committed rows",
        "",
        note,
        "",
        "| case | events | events/s | seconds | publisher msg/s | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.case} | {r.events:,} | {r.events_per_s:,.0f} | {r.seconds:.1f} | "
        f"{r.publish_per_s:,.0f} | {r.load_average:.1f} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def services() -> Iterator[tuple[BrokerAccess, BrokerAccess, Callable[[str], Target]]]:
    """The real broker (TLS, passwords, ACL) and PostgreSQL with fsync on: the aggregator
    acknowledges a message once its commit returns, so the commit has to be durable."""
    with ds.Mosquitto() as broker, ds.Postgres(settings={"fsync": "on"}) as pg:
        aggregator, admin = broker.user("aggregator"), broker.user("admin")

        def access(user: ds.BrokerUser) -> BrokerAccess:
            return BrokerAccess(
                broker.host, broker.tls_port, user.name, user.password, broker.ca_file
            )

        env = {"FOOTFALL_AGGREGATOR__MQTT__PASSWORD": aggregator.password}

        def target(name: str) -> Target:
            if name.startswith("sqlite:"):
                return Target(name, name, env)
            pg.create_database(name)
            return Target(
                f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{name}",
                pg.url_for(name),
                {**env, "FOOTFALL_AGGREGATOR__STORE__PASSWORD": pg.password},
            )

        yield access(aggregator), access(admin), target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 60,000: runs of a few seconds (20,000) moved by +-30 % between repeats.
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--baseline-events", type=int, default=3_000)
    args = parser.parse_args()
    cases = [
        Case("sqlite", 1, 500, args.events),
        Case("sqlite", 2, 500, args.events),
        Case("sqlite", 1, 1, args.baseline_events),
        Case("postgresql", 1, 500, args.events),
        Case("postgresql", 2, 500, args.events),
        Case("postgresql", 1, 1, args.baseline_events),
        Case("postgresql", 1, 500, args.events, protocol="3.1.1"),
    ]
    results: list[Result] = []
    with services() as (broker, publisher, target), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n, case in enumerate(cases):
            name = f"sqlite:///{workdir}/{n}.db" if case.backend == "sqlite" else f"bench_{n}"
            print(f"{case.name}: {case.events:,} events ...", flush=True)
            results.append(run_case(case, broker, publisher, target(name), workdir))
            print(f"  {results[-1].events_per_s:,.0f} events/s", flush=True)
    note = (
        f"{os.cpu_count()} cores, Python {platform.python_version()}; Mosquitto 2.0.11 over TLS "
        "with passwords and ACL, PostgreSQL 15 with fsync on, SQLite in WAL mode with "
        "synchronous=FULL; each aggregator validates and commits in a child process "
        "(ingest.commit_process, the default); broker, database, aggregators and the publisher "
        "all on this machine, "
        "which other work shared (load average at the end of each case in the last column). "
        "Events/s: rows committed per second from the first committed row to the last, the "
        "events having been queued by the broker beforehand. Row by row: one event per "
        "transaction and acknowledgement (batch_max_events = 1), same code otherwise."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(
        json.dumps({"note": note, "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    text = markdown(results, note)
    (RESULTS / "ingest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

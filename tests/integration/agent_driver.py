"""A real agent process for the outage tests: synthetic PersonEvents into the real outbox,
through the real delivery wiring and SIGTERM handling; a test can SIGKILL it at any moment.

    python -m tests.integration.agent_driver CONFIG --events N --seed S [--rate R] [--batch B]
        [--crop-bytes N]

The source resumes where the outbox says it stopped (its lifetime count of accepted events), the
way a recorded clip would be re-read from its last position, so a restarted driver produces the
rest and every event id is produced exactly once. After the last event it keeps delivering until
SIGTERM, like an agent whose camera sees nobody.
"""

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

from edge_agent.agent import AgentError, Delivery
from edge_agent.config import load_agent_config
from edge_agent.running import run_until_stopped
from edge_agent.vision.sinks import EventSink
from footfall.cli_support import configure_logging
from tests.delivery_support import synthetic_events

log = logging.getLogger("agent_driver")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--batch", type=int, default=20, help="events per outbox transaction")
    parser.add_argument("--crop-bytes", type=int, default=None)
    args = parser.parse_args(argv)
    configure_logging(verbose=False)

    config = load_agent_config(args.config)
    try:
        delivery = Delivery(config)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    start_at = delivery.outbox.counters().events_accepted
    todo = list(
        synthetic_events(
            args.events, seed=args.seed, address=config.address, crop_bytes=args.crop_bytes
        )
    )[start_at:]
    log.info("producing %d events from #%d", len(todo), start_at)

    def produce(_sink: EventSink, stop: threading.Event) -> None:
        # The outbox itself rather than the EventSink: batches share one fsync.
        put_many = delivery.outbox.put_many
        began = time.monotonic()
        done = 0
        while done < len(todo) and not stop.is_set():
            batch = todo[done : done + args.batch]
            put_many(batch)
            done += len(batch)
            ahead = done / args.rate - (time.monotonic() - began)
            if ahead > 0:
                stop.wait(ahead)
        print(f"produced {start_at + done}", flush=True)
        stop.wait()  # keep delivering until SIGTERM

    try:
        report = run_until_stopped(delivery, produce)
    except AgentError as exc:  # as ``footfall-agent run`` does: one line, exit 1
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"left events={report.events_left} crops={report.crops_left}", flush=True)
    return 0 if report.stopped_cleanly else 1


if __name__ == "__main__":
    sys.exit(main())

"""The agent's delivery commands: ``outbox status``, ``deliver`` and ``check-broker``."""

import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge_agent.vision.sinks import EventSink

if TYPE_CHECKING:
    from edge_agent.agent import DrainReport
from edge_agent.cli_options import AgentConfigOpt, LegacyConfigArg, agent_config
from footfall.cli_support import config_errors_exit, fail

log = logging.getLogger(__name__)

outbox_app = typer.Typer(help="Inspect the on-device outbox.", no_args_is_help=True)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


@outbox_app.command("status")
def outbox_status(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The agent's data directory")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Agent configuration (for data_dir and cap)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output: the figures as one object")
    ] = False,
) -> None:
    """Depth, oldest entry age, crops pending, bytes and lifetime counters of the outbox."""
    from edge_agent.config import OutboxSettings, load_agent_config
    from edge_agent.delivery.outbox import Outbox, OutboxError, outbox_path

    if (data_dir is None) == (config is None):
        raise fail("give exactly one of --data-dir or --config")
    settings = OutboxSettings()
    if config is not None:
        with config_errors_exit():
            cfg = load_agent_config(config)
        data_dir, settings = cfg.data_dir, cfg.outbox
    assert data_dir is not None
    path = outbox_path(data_dir)
    if not path.is_file():
        raise fail(f"no outbox at {path}; check the agent's data directory (its data_dir)")
    try:
        with Outbox(path, max_bytes=settings.max_bytes) as box:
            status = box.status()
    except OutboxError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"path": str(path), **asdict(status)}, indent=2))
        return
    c = status.counters
    cap = f" of {status.max_bytes:,} cap" if config is not None else ""
    lines = [
        f"outbox:         {path}",
        f"events waiting: {status.depth:,} (oldest {_age(status.oldest_unsent_age_seconds)})",
        f"crops waiting:  {status.crops_pending:,} (oldest {_age(status.oldest_crop_age_seconds)})",
        f"bytes:          {status.bytes:,}{cap} (file {status.file_bytes:,})",
        f"events:         accepted {c.events_accepted:,}, published {c.events_published:,}, "
        f"confirmed {c.events_confirmed:,}, published again {c.events_requeued:,}, "
        f"duplicate puts {c.events_duplicate:,}",
        f"crops:          accepted {c.crops_accepted:,}, stored {c.crops_stored:,}, "
        f"dropped {c.crops_dropped:,} (after their event was sent: "
        f"{c.crops_dropped_after_publish:,})",
    ]
    typer.echo("\n".join(lines))


def deliver(
    config: AgentConfigOpt = None,
    legacy_config: LegacyConfigArg = None,
    until_empty: Annotated[
        bool,
        typer.Option("--until-empty", help="Exit once every event and crop has left the outbox"),
    ] = False,
) -> None:
    """Send what is in the outbox (events to MQTT, crops to S3) without running the pipeline;
    runs until SIGTERM, or until the outbox is empty with --until-empty."""
    from edge_agent.agent import AgentError, Delivery
    from edge_agent.config import load_agent_config
    from edge_agent.delivery.outbox import OutboxError
    from edge_agent.running import run_until_stopped

    config = agent_config(config, legacy_config)
    with config_errors_exit():
        cfg = load_agent_config(config)
    if cfg.mqtt is None and cfg.s3 is None:
        raise fail(f"{config}: nothing to deliver to (no [mqtt] and no [s3] section)")

    def nothing_left() -> bool:
        # Only what this configuration can deliver: events need [mqtt], crops need [s3].
        box = delivery.outbox
        events_done = cfg.mqtt is None or box.depth() == 0
        return events_done and (cfg.s3 is None or box.crops_pending() == 0)

    def wait(_sink: EventSink, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            if until_empty and nothing_left():
                return

    started = time.monotonic()
    try:
        delivery = Delivery(cfg)
        report = run_until_stopped(delivery, wait)
    except (AgentError, OutboxError) as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"{report.events_left} event(s) and {report.crops_left} crop(s) left in the outbox "
        f"after {time.monotonic() - started:.1f} s"
    )
    if until_empty and not _nothing_left_in(report, cfg.mqtt is not None, cfg.s3 is not None):
        raise typer.Exit(1)


def _nothing_left_in(report: "DrainReport", events: bool, crops: bool) -> bool:
    return (not events or report.events_left == 0) and (not crops or report.crops_left == 0)


def check_broker(config: AgentConfigOpt = None, legacy_config: LegacyConfigArg = None) -> None:
    """Connect to the configured broker once: a line saying it worked, or one clear error."""
    from edge_agent.config import load_agent_config
    from edge_agent.delivery.preflight import SetupError, check_broker_files
    from footfall.mqtt_link import LinkError
    from footfall.mqtt_link import check_broker as check

    config = agent_config(config, legacy_config)
    with config_errors_exit():
        cfg = load_agent_config(config)
    if cfg.mqtt is None:
        raise fail(f"{config}: no [mqtt] section")
    try:
        check_broker_files(cfg.mqtt)
        typer.echo(check(cfg.mqtt, cfg.agent))
    except (SetupError, LinkError) as exc:
        raise fail(str(exc)) from None


def run_agent(
    config: AgentConfigOpt = None,
    legacy_config: LegacyConfigArg = None,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="Directory holding model files (default: config)"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="When source.url is a video file: wall-clock time of its first frame, ISO 8601 "
            "with time zone (default: now)",
        ),
    ] = None,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime",
            help="When source.url is a video file: deliver its frames at their own pace (frame i "
            "no earlier than i/fps seconds after the first), as a camera would",
        ),
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="When source.url is a video file: start it again at its end, its time running "
            "on from where the previous pass ended; runs until stopped",
        ),
    ] = False,
) -> None:
    """Run the agent: source.url through the pipeline into the durable outbox, events to MQTT,
    crops to S3. SIGTERM or Ctrl-C stops the source, drains for delivery.shutdown_drain_seconds
    and exits; whatever is left stays in the outbox for the next start."""
    from datetime import datetime

    from edge_agent.agent import AgentError
    from edge_agent.config import load_agent_config
    from edge_agent.delivery.outbox import OutboxError
    from edge_agent.running import run_live
    from edge_agent.vision.counting import GeometryError

    config = agent_config(config, legacy_config)
    with config_errors_exit():
        cfg = load_agent_config(config)
    first_frame = None
    if start is not None:
        try:
            first_frame = datetime.fromisoformat(start)
        except ValueError:
            raise fail(f"--start {start!r} is not an ISO 8601 time", 2) from None
        if first_frame.tzinfo is None:
            raise fail(f"--start {start!r} needs a time zone, e.g. +02:00 or Z", 2)
    try:
        report = run_live(
            cfg, models_dir=models_dir, start=first_frame, realtime=realtime, loop=loop
        )
    except (AgentError, OutboxError, GeometryError) as exc:
        raise fail(str(exc)) from None
    if not report.stopped_cleanly:
        raise typer.Exit(1)

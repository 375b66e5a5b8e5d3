"""``footfall-aggregator``: the aggregator's command line. A thin layer over the library.

Exit codes: 0 success; 1 an error, printed as one line; 2 an invalid configuration or option;
3 (``fleet`` only) at least one agent is silent.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aggregator.config import AggregatorConfig, StoreSettings
from aggregator.errors import AggregatorError
from aggregator.fleet_cli import EXIT_SILENT_AGENTS as EXIT_SILENT_AGENTS
from aggregator.fleet_cli import fleet_app
from footfall import __version__
from footfall.cli_support import config_errors_exit, configure_logging, fail, report_valid

app = typer.Typer(
    help="Aggregator: ingest events from many agents, store them, build per-site workbooks.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Schema of the store: status and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")

ConfigArg = Annotated[
    Path, typer.Argument(help="Aggregator configuration file (TOML)", show_default=False)
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Aggregator configuration file (TOML)", show_default=False),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL, overriding the configuration (e.g. sqlite:///footfall.db); the password "
        "comes from FOOTFALL_AGGREGATOR__STORE__PASSWORD",
        show_default=False,
    ),
]
SiteOpt = Annotated[str | None, typer.Option("--site", help="Only this site", show_default=False)]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False,
) -> None:
    configure_logging(verbose)


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except AggregatorError as exc:
        raise fail(str(exc)) from None


def _load(config: Path | None, store: str | None = None) -> AggregatorConfig:
    from aggregator.config import load_aggregator_config

    with config_errors_exit():
        cfg = load_aggregator_config(config)
    if store is None:
        return cfg
    try:
        settings = StoreSettings(
            url=store,
            password=cfg.store.password,
            password_file=cfg.store.password_file,
            auto_upgrade=cfg.store.auto_upgrade,
        )
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise fail(f"--store: {message}", code=2) from None
    return cfg.model_copy(update={"store": settings})


@app.command()
def version() -> None:
    """Print the software version."""
    typer.echo(__version__)


@app.command("validate-config")
def validate_config(path: ConfigArg) -> None:
    """Check an aggregator configuration file; print every problem with its key path (exit 2)."""
    _load(path)
    report_valid(path)


@app.command()
def run(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Aggregator configuration file (TOML)"),
    ],
) -> None:
    """Run the ingest service: consume events, statuses and heartbeats from the broker into the
    store until SIGTERM or SIGINT."""
    from aggregator.service import run_service

    cfg = _load(config)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with _domain_errors(), config_errors_exit():
        run_service(cfg, stop)


@app.command()
def replay(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSON-lines files (one PersonEvent per line; .gz accepted) or directories of them",
            show_default=False,
        ),
    ],
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Import recorded events through the same validation and store as live ingest."""
    from aggregator.replay import replay_files
    from aggregator.service import open_store

    cfg = _load(config, store)
    with _domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet)
        try:
            report = replay_files(
                files,
                event_store,
                max_payload_bytes=cfg.ingest.max_payload_bytes,
                keep_bytes=cfg.ingest.dead_letter_payload_bytes,
            )
        finally:
            event_store.close()
    for line in report.lines_of_text():
        typer.echo(line)


@app.command("dead-letters")
def dead_letters(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    site: SiteOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many to list")] = 20,
) -> None:
    """Count rejected messages by reason and list the most recent ones."""
    from aggregator.service import open_store

    cfg = _load(config, store)
    with _domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet, upgrade=False)
        try:
            reasons = event_store.dead_letter_reasons(site=site)
            rows = event_store.dead_letters(site=site, limit=limit)
        finally:
            event_store.close()
    total = sum(reasons.values())
    typer.echo(
        f"{total} dead letters"
        + (": " + ", ".join(f"{r} {n}" for r, n in reasons.items()) if reasons else "")
    )
    if not rows:
        return
    table = Table("id", "received (UTC)", "reason", "field", "topic / source", "bytes", "detail")
    for row in rows:
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    str(row.id),
                    f"{row.received_at:%Y-%m-%d %H:%M:%S}",
                    row.reason,
                    row.field or "",
                    row.topic or row.source,
                    f"{row.payload_size:,}",
                    row.detail[:160],
                )
            )
        )
    Console(width=200).print(table)


DateOpt = Annotated[
    datetime | None,
    typer.Option(
        "--date",
        formats=["%Y-%m-%d"],
        help="Local day of the site (default: yesterday)",
        show_default=False,
    ),
]


def _check_days(first: date, last: date, option: str) -> None:
    from aggregator.report.period import check_day

    try:
        check_day(first)
        check_day(last)
    except ValueError as exc:
        raise fail(f"{option}: {exc}", code=2) from None


@app.command()
def report(
    site: Annotated[str, typer.Option("--site", help="Site id")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Workbook to write (.xlsx)")],
    config: ConfigOpt = None,
    store: StoreOpt = None,
    day: DateOpt = None,
    first: Annotated[
        datetime | None,
        typer.Option(
            "--from", formats=["%Y-%m-%d"], help="First local day of a range", show_default=False
        ),
    ] = None,
    last: Annotated[
        datetime | None,
        typer.Option(
            "--to", formats=["%Y-%m-%d"], help="Last local day of a range", show_default=False
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="IANA zone for a site not in the configuration (default UTC)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build one site's workbook for a local day (default: yesterday) or a range of days."""
    from aggregator.delivery.jobs import build_report, site_info, yesterday
    from aggregator.service import open_store

    cfg = _load(config, store)
    info = site_info(cfg, site, timezone)
    if (first is None) != (last is None):
        raise fail("--from and --to go together", code=2)
    if first is not None and day is not None:
        raise fail("give either --date or --from/--to", code=2)
    if first is not None and last is not None:
        start, end = first.date(), last.date()
        if end < start:
            raise fail("--to is before --from", code=2)
    else:
        start = end = day.date() if day is not None else yesterday(info.timezone)
    _check_days(start, end, "--date" if day is not None else "--from/--to")
    with _domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet, upgrade=False)
        try:
            crop_base = cfg.delivery.crop_link_base if cfg.delivery else None
            result = build_report(event_store, info, start, end, out, crop_base)
        finally:
            event_store.close()
    typer.echo(
        f"{result.path}: {result.people} people at {len(result.spots)} spots, {result.period.describe()}"
    )
    for s in result.spots:
        women = f"{s.women_share:.0%} women" if s.women_share is not None else "gender n/a"
        typer.echo(f"  #{s.rank} {s.spot}: {s.people} people, {women}")
    if result.empty_reason:
        typer.echo(f"  no data: {result.empty_reason}")


@app.command()
def deliver(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Aggregator configuration file (TOML)")
    ],
    day: DateOpt = None,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Only these sites (repeatable)", show_default=False),
    ] = None,
) -> None:
    """Build, upload and link each site's workbook for its local yesterday (or --date); mail the
    link if configured. Retries; exits 1 if any site could not be delivered."""
    from aggregator.delivery.jobs import deliver_sites
    from aggregator.service import open_store

    cfg = _load(config)
    if cfg.delivery is None:
        raise fail(f"{config}: no [delivery] section", code=2)
    if day is not None:
        _check_days(day.date(), day.date(), "--date")
    with _domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet)
        try:
            try:
                outcomes = deliver_sites(
                    cfg, event_store, day=day.date() if day else None, site_ids=site
                )
            except KeyError as exc:
                raise fail(str(exc.args[0]), code=2) from None
        finally:
            event_store.close()
    failed = [o for o in outcomes if not o.ok]
    for o in outcomes:
        if o.ok:
            mailed = f", mailed to {', '.join(o.emailed)}" if o.emailed else ""
            typer.echo(f"{o.site} {o.day}: {o.people} people -> {o.key}{mailed}\n  {o.url}")
        else:
            typer.secho(
                f"{o.site} {o.day}: FAILED after {o.attempts} attempts: {o.error}",
                fg=typer.colors.RED,
                err=True,
            )
    if failed:
        raise typer.Exit(1)


@app.command()
def deliveries(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    site: SiteOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many to list")] = 20,
) -> None:
    """List recent workbook deliveries, failed ones included."""
    from aggregator.service import open_store
    from aggregator.store.deliveries import DeliveryLogTable

    cfg = _load(config, store)
    with _domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet, upgrade=False)
        try:
            rows = DeliveryLogTable(event_store.engine).recent(site=site, limit=limit)
        finally:
            event_store.close()
    table = Table(
        "finished (UTC)", "site", "day", "result", "attempts", "people", "key / error", "mailed to"
    )
    for r in rows:
        table.add_row(
            *(
                Text(c)
                for c in (
                    f"{r.finished_at:%Y-%m-%d %H:%M:%S}",
                    r.site,
                    f"{r.day}",
                    "ok" if r.ok else "FAILED",
                    str(r.attempts),
                    f"{r.people:,}",
                    (r.object_key if r.ok else r.error) or "",
                    r.emailed or "",
                )
            )
        )
    Console(width=200).print(table)


@app.command()
def survey(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: <site>.xlsx, footfall.db, crops/")
    ],
    clips: Annotated[
        Path | None,
        typer.Option(
            "--clips", help="TOML or CSV file listing path, site, spot, start (, agent, config)"
        ),
    ] = None,
    clip: Annotated[
        list[Path] | None, typer.Option("--clip", help="A video file (repeat for several)")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Site of the clips: once, or once per --clip")
    ] = None,
    spot: Annotated[
        list[str] | None, typer.Option("--spot", help="Spot of the clips: once, or once per --clip")
    ] = None,
    start: Annotated[
        list[str] | None,
        typer.Option(
            "--start",
            help="When each clip's first frame was filmed, ISO 8601 with zone: once, or once per --clip",
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA time zone of the site(s) for the workbook")
    ] = "UTC",
    agent_config: Annotated[
        Path | None,
        typer.Option("--agent-config", help="Agent configuration (TOML) for the pipeline"),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="Directory holding model files (default: $FOOTFALL_MODELS_DIR)"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per clip")] = True,
) -> None:
    """Recorded clips of candidate spots in, site workbook out: the real pipeline on every clip,
    an in-process aggregator (SQLite, crops in a folder), then one workbook per site."""
    from edge_agent.clips import ClipSpecError, clips_from_options, load_clips_file

    specs = []
    try:
        if clips is not None:
            specs += load_clips_file(clips)
        if clip:
            specs += clips_from_options(clip, site or [], spot or [], start or [], None)
    except ClipSpecError as exc:
        raise fail(str(exc).replace("\n", "\nerror: "), code=2) from None
    if not specs:
        raise fail(
            "nothing to survey: give --clips FILE or --clip PATH with --site, --spot, --start", 2
        )
    _survey(specs, out, timezone, agent_config, models_dir, progress, {})


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder")] = Path("out/demo"),
    samples_dir: Annotated[
        Path | None,
        typer.Option(
            "--samples-dir",
            help="Folder with the sample clips (default: $FOOTFALL_SAMPLES_DIR, then the cache, then download)",
        ),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="Directory holding model files (default: $FOOTFALL_MODELS_DIR)"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per clip")] = True,
) -> None:
    """The whole product in one command: sample clips play the candidate spots of a demo site,
    run through the real pipeline into an embedded aggregator, and the site workbook comes out."""
    from aggregator.demo import DEMO_SITE, DEMO_SITE_NAME, DEMO_TIMEZONE, demo_clips

    typer.echo("finding the sample clips ...")
    clips, configs, missing = demo_clips(samples_dir)
    for reason in missing:
        typer.secho(f"  skipped: {reason}", fg=typer.colors.YELLOW, err=True)
    if len(clips) < 2:
        raise fail(
            "the demo needs at least two sample clips; set FOOTFALL_SAMPLES_DIR or --samples-dir"
        )
    for c in clips:
        typer.echo(f"  {c.spot}: {c.path}")
    _survey(
        clips, out, DEMO_TIMEZONE, None, models_dir, progress, {DEMO_SITE: DEMO_SITE_NAME}, configs
    )


def _survey(
    specs: list[Any],
    out: Path,
    timezone: str,
    agent_config: Path | None,
    models_dir: Path | None,
    progress: bool,
    site_names: dict[str, str],
    spot_configs: dict[str, Any] | None = None,
) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from aggregator.embedded import run_survey
    from edge_agent.build import BuildError
    from edge_agent.config import load_agent_config
    from footfall.settings import ConfigError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(
            f"--timezone: unknown time zone {timezone!r} (use an IANA name such as Europe/Berlin)",
            2,
        ) from None
    base = None
    if agent_config is not None:
        with config_errors_exit():
            base = load_agent_config(agent_config)

    def reported(result: Any) -> None:
        status = (
            "FAILED: " + str(result.error)
            if result.error
            else f"{result.people} people in {result.video_seconds:.0f} s of video"
        )
        if result.incomplete:
            status = f"INCOMPLETE: {result.incomplete}; counted: {status}"
        if result.published:
            status += (
                f", published to the broker ({result.left_in_outbox} event(s) left in the outbox)"
                if result.left_in_outbox
                else ", published to the broker"
            )
        typer.echo(f"  {result.clip.site}/{result.clip.spot} ({result.clip.path.name}): {status}")

    typer.echo(f"processing {len(specs)} clip(s) with the real pipeline ...")
    try:
        result = run_survey(
            specs,
            out,
            timezone=timezone,
            site_names=site_names,
            config=base,
            models_dir=models_dir,
            progress=progress,
            on_result=reported,
            spot_configs=spot_configs,
        )
    except (BuildError, ConfigError) as exc:
        raise fail(str(exc)) from None
    for wb in result.workbooks:
        typer.echo(f"\nworkbook: {wb.path}")
        typer.echo(
            f"  {wb.site}, {wb.period.describe()}: {wb.people} people at {len(wb.spots)} spots"
        )
        for s in wb.spots:
            women = (
                f"{s.women_share:.0%} women (95% CI {s.women_ci[0]:.0%}-{s.women_ci[1]:.0%})"
                if s.women_share is not None and s.women_ci
                else "gender n/a"
            )
            rate = f"{s.people_per_hour:.0f}/h" if s.people_per_hour is not None else "n/a"
            typer.echo(
                f"  #{s.rank} {s.spot}: {s.people} people ({rate} of footage), {women}, gender unknown {s.gender_unknown}"
            )
    if not result.ok:
        raise typer.Exit(1)


@db_app.command("status")
def db_status(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Print the store's schema version and the migrations still to apply."""
    from aggregator.store.store import schema_status

    cfg = _load(config, store)
    with _domain_errors(), config_errors_exit():
        found = schema_status(cfg.store.url, password=cfg.store.password_value())
    typer.echo(f"store: {_redacted(cfg.store.url)}")
    typer.echo(f"schema version: {found.current} (this software: {found.latest})")
    if found.current > found.latest:
        typer.echo("the store is newer than this software: upgrade the aggregator")
    for migration in found.pending:
        typer.echo(f"pending {migration.version}: {migration.description}")
    if found.up_to_date:
        typer.echo("up to date")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Apply pending schema migrations (safe to run while aggregators are running)."""
    from aggregator.store.store import upgrade_schema

    cfg = _load(config, store)
    with _domain_errors(), config_errors_exit():
        applied = upgrade_schema(cfg.store.url, password=cfg.store.password_value())
    for migration in applied:
        typer.echo(f"applied {migration.version}: {migration.description}")
    if not applied:
        typer.echo("already up to date")


def _redacted(url: str) -> str:
    from aggregator.store.engine import redacted

    return redacted(url)

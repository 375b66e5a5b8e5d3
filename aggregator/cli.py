"""``footfall-aggregator``: the aggregator's command line. A thin layer over the library.

Exit codes: 0 success; 1 an error, printed as one line; 2 an invalid configuration or option;
3 (``fleet`` only) at least one agent is offline, silent or without video.
"""

import logging
import signal
import threading
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aggregator.calibrate_cli import calibrate
from aggregator.cli_common import check_setup, domain_errors, load_config, opened_store
from aggregator.config import AggregatorConfig
from aggregator.fleet_cli import EXIT_SILENT_AGENTS as EXIT_SILENT_AGENTS
from aggregator.fleet_cli import fleet_app
from aggregator.survey_cli import demo, survey
from footfall import __version__
from footfall.cli_support import (
    DebugOpt,
    JsonOpt,
    NoFileChecksOpt,
    ReportingGroup,
    config_errors_exit,
    fail,
    print_json,
    print_table,
    report_valid,
    required_spelling,
    start,
    table_rows,
)


class AggregatorCommands(ReportingGroup):
    """``footfall-aggregator``: the aggregator library's own errors are one line too."""

    domain_errors = (*ReportingGroup.domain_errors, ("aggregator.errors", "AggregatorError"))


if TYPE_CHECKING:
    from aggregator.store import EventStore

app = typer.Typer(
    cls=AggregatorCommands,
    help="Aggregator: ingest events from many agents, store them, build per-site workbooks.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Schema of the store: status and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")

# The old spelling of validate-config's file: hidden, accepted with a warning for this release.
LegacyConfigArg = Annotated[
    Path | None, typer.Argument(hidden=True, show_default=False, metavar="CONFIG")
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
    debug: DebugOpt = False,
) -> None:
    start(verbose=verbose, debug=debug)


@app.command()
def version() -> None:
    """Print the software version."""
    typer.echo(__version__)


@app.command("validate-config")
def validate_config(
    config: ConfigOpt = None,
    legacy_config: LegacyConfigArg = None,
    no_file_checks: NoFileChecksOpt = False,
) -> None:
    """Check an aggregator configuration file and the files it names; print every problem with
    its key path (exit 2)."""
    from aggregator.setup_checks import all_checks, problems

    path = required_spelling(
        config, legacy_config, new="--config CONFIG", old="a positional CONFIG"
    )

    cfg = load_config(path)
    report_valid(path, [] if no_file_checks else problems(all_checks(cfg)))


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
    from aggregator.setup_checks import broker_checks, delivery_checks, store_checks

    cfg = load_config(config)
    # Before the store opens and migrations run: a missing file ends the start, not a thread.
    in_service = cfg.delivery is not None and cfg.delivery.in_service
    check_setup(
        [*broker_checks(cfg), *store_checks(cfg), *(delivery_checks(cfg) if in_service else [])]
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with domain_errors(), config_errors_exit():
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
    from aggregator.setup_checks import store_checks

    cfg = load_config(config, store)
    check_setup(store_checks(cfg))  # the store may be created here
    with opened_store(cfg) as event_store:
        report = replay_files(
            files,
            event_store,
            max_payload_bytes=cfg.ingest.max_payload_bytes,
            keep_bytes=cfg.ingest.dead_letter_payload_bytes,
        )
    for line in report.lines_of_text():
        typer.echo(line)


@app.command("dead-letters")
def dead_letters(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    site: SiteOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many to list")] = 20,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Machine-readable output: total, counts by reason and the rows"
        ),
    ] = False,
) -> None:
    """Count rejected messages by reason and list the most recent ones."""
    cfg = load_config(config, store)
    with opened_store(cfg, upgrade=False) as event_store:
        reasons = event_store.dead_letter_reasons(site=site)
        rows = event_store.dead_letters(site=site, limit=limit)
    total = sum(reasons.values())
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
    if as_json:
        print_json({"total": total, "reasons": dict(reasons), "rows": table_rows(table)})
        return
    typer.echo(
        f"{total} dead letters"
        + (": " + ", ".join(f"{r} {n}" for r, n in reasons.items()) if reasons else "")
    )
    if rows:
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


def _check_known_site(cfg: AggregatorConfig, event_store: "EventStore", site: str) -> None:
    """A site that is neither configured nor in the store is a typo, not an empty day: an empty
    workbook would look like cameras that were off."""
    configured = {s.id for s in cfg.sites}
    if site in configured:
        return
    stored = set(event_store.sites()) | {a.site for a in event_store.agents()}
    if site in stored:
        return
    known = ", ".join(sorted(configured | stored)) or "none yet"
    raise fail(f"--site {site}: no such site in the configuration or the store (known: {known})")


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
            help="IANA zone for a site not in the configuration (default: the zone the "
            "service's configuration registered in the store, else UTC)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build one site's workbook for a local day (default: yesterday) or a range of days."""
    from aggregator.delivery.crops import s3_crop_reader
    from aggregator.delivery.jobs import build_report, registered_site, site_info, yesterday
    from aggregator.report.about import partial_note
    from footfall.preflight import check_output_file

    cfg = load_config(config, store)
    registered = None
    if timezone is None and site not in {s.id for s in cfg.sites}:
        # Not in this configuration: the zone an aggregator's configuration registered.
        with opened_store(cfg, upgrade=False) as event_store:
            registered = registered_site(event_store, site)
    info = site_info(cfg, site, timezone, registered)
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
    delivery = cfg.delivery
    check_setup([lambda: check_output_file("--out", out)])
    crops = s3_crop_reader(cfg.s3, delivery.crop_bucket) if delivery else None
    with opened_store(cfg, upgrade=False) as event_store:
        _check_known_site(cfg, event_store, site)
        result = build_report(
            event_store,
            info,
            start,
            end,
            out,
            delivery.crop_link_base if delivery else None,
            crops,
            delivery.pictures_per_sheet if delivery else 0,
        )
    typer.echo(
        f"{result.path}: {result.people} people at {len(result.spots)} spots, {result.period.describe()}"
    )
    for export in result.exports:
        typer.echo(f"  person list: {export}")
    if result.crops_missing:
        typer.echo(
            f"  {result.crops_missing} face crop(s) could not be read: those rows keep only the link"
        )
    for s in result.spots:
        women = f"{s.women_share:.0%} women" if s.women_share is not None else "gender n/a"
        typer.echo(f"  #{s.rank} {s.spot}: {s.people} people, {women}")
    if result.empty_reason:
        typer.echo(f"  no data: {result.empty_reason}")
    if result.partial_until is not None:
        typer.echo(f"  partial day: {partial_note(result.partial_until, result.period)}")


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
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Deliver a --date that is not over yet at a site; the workbook says it is partial",
        ),
    ] = False,
) -> None:
    """Build, upload and link each site's workbook for its local yesterday (or --date); mail the
    link if configured. Retries; exits 1 if any site could not be delivered, 2 for a --date not
    over yet at a site (without --allow-partial)."""
    from aggregator.delivery.jobs import deliver_sites
    from aggregator.errors import PartialDayError
    from aggregator.setup_checks import delivery_checks, store_checks

    cfg = load_config(config)
    if cfg.delivery is None:
        raise fail(f"{config}: no [delivery] section", code=2)
    if day is not None:
        _check_days(day.date(), day.date(), "--date")
    check_setup([*store_checks(cfg), *delivery_checks(cfg)])
    with opened_store(cfg) as event_store:
        try:
            outcomes = deliver_sites(
                cfg,
                event_store,
                day=day.date() if day else None,
                site_ids=site,
                allow_partial=allow_partial,
            )
        except KeyError as exc:
            raise fail(str(exc.args[0]), code=2) from None
        except PartialDayError as exc:
            raise fail(str(exc), code=2) from None
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
    as_json: JsonOpt = False,
) -> None:
    """List recent workbook deliveries, failed ones included."""
    from aggregator.store.deliveries import DeliveryLogTable

    cfg = load_config(config, store)
    with opened_store(cfg, upgrade=False) as event_store:
        rows = DeliveryLogTable(event_store.engine).recent(site=site, limit=limit)
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
    print_table(table, as_json)


app.command()(survey)
app.command()(demo)
app.command()(calibrate)


@db_app.command("status")
def db_status(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Machine-readable output: versions and pending migrations"),
    ] = False,
) -> None:
    """Print the store's schema version and the migrations still to apply."""
    from aggregator.store.store import schema_status

    cfg = load_config(config, store)
    with domain_errors(), config_errors_exit():
        found = schema_status(cfg.store.url, password=cfg.store.password_value())
    if as_json:
        pending = [{"version": m.version, "description": m.description} for m in found.pending]
        print_json(
            {
                "store": _redacted(cfg.store.url),
                "schema_version": found.current,
                "software_version": found.latest,
                "pending": pending,
                "up_to_date": found.up_to_date,
            }
        )
        return
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
    from aggregator.setup_checks import store_checks
    from aggregator.store.store import upgrade_schema

    cfg = load_config(config, store)
    check_setup(store_checks(cfg))  # the store may be created here
    with domain_errors(), config_errors_exit():
        # Printed below: the log would only repeat it.
        applied = upgrade_schema(
            cfg.store.url, password=cfg.store.password_value(), announce=logging.DEBUG
        )
    for migration in applied:
        typer.echo(f"applied {migration.version}: {migration.description}")
    if not applied:
        typer.echo("already up to date")


def _redacted(url: str) -> str:
    from aggregator.store.engine import redacted

    return redacted(url)

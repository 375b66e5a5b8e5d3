"""``footfall-aggregator``: the aggregator's command line. A thin layer over the library."""

from pathlib import Path
from typing import Annotated

import typer

from footfall import __version__
from footfall.cli_support import config_errors_exit, configure_logging, report_valid

app = typer.Typer(
    help="Aggregator: ingest events from many agents, store them, build per-site workbooks.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigArg = Annotated[
    Path, typer.Argument(help="Aggregator configuration file (TOML)", show_default=False)
]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False,
) -> None:
    configure_logging(verbose)


@app.command()
def version() -> None:
    """Print the software version."""
    typer.echo(__version__)


@app.command("validate-config")
def validate_config(path: ConfigArg) -> None:
    """Check an aggregator configuration file; print every problem with its key path (exit 2)."""
    from aggregator.config import load_aggregator_config

    with config_errors_exit():
        load_aggregator_config(path)
    report_valid(path)

"""What both command-line programs share: logging setup and turning library errors into exits."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from footfall.redact import redact, redact_logs
from footfall.settings import ConfigError


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redact_logs()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr (secrets masked) and return the exit to raise."""
    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def config_errors_exit() -> Iterator[None]:
    """Turn a :class:`ConfigError` into its listing on stderr and exit code 2."""
    try:
        yield
    except ConfigError as exc:
        typer.echo(redact(str(exc)), err=True)
        raise typer.Exit(2) from None


def report_valid(path: Path) -> None:
    typer.echo(f"{path}: ok")

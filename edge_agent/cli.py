"""``footfall-agent``: the edge agent's command line. A thin layer over the library."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from footfall import __version__
from footfall.cli_support import config_errors_exit, configure_logging, fail, report_valid
from models.assets import AssetError, Location, ModelResolver
from models.cli import register as register_training_commands

app = typer.Typer(
    help="Edge agent: count people at a spot and estimate their gender and age group.",
    no_args_is_help=True,
    add_completion=False,
)
models_app = typer.Typer(
    help="List, fetch and verify the model files the agent needs; train, export, evaluate and "
    "fine-tune age/gender models (the 'train' extra).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

ConfigArg = Annotated[
    Path, typer.Argument(help="Agent configuration file (TOML)", show_default=False)
]
ModelsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--models-dir", help="Directory holding model files (default: $FOOTFALL_MODELS_DIR)"
    ),
]
NamesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Model names from the manifest (default: all)", show_default=False),
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
    """Check an agent configuration file; print every problem with its key path (exit 2)."""
    from edge_agent.config import load_agent_config

    with config_errors_exit():
        load_agent_config(path)
    report_valid(path)


def _resolver(models_dir: Path | None, allow_download: bool = True) -> ModelResolver:
    return ModelResolver(models_dir=models_dir, allow_download=allow_download)


@models_app.command("list")
def models_list(models_dir: ModelsDirOpt = None) -> None:
    """Show every model in the manifest, its licence and where it was found (no download)."""
    resolver = _resolver(models_dir)
    table = Table("name", "role", "version", "file", "bytes", "licence", "commercial", "found in")
    for found in resolver.status():
        spec = found.spec
        where = "-" if found.path is None else f"{found.location.value}: {found.path.parent}"
        table.add_row(
            spec.name,
            spec.role.value,
            spec.version,
            spec.file,
            f"{spec.size:,}",
            spec.licence,
            "yes" if spec.commercial_use else "NO",
            where,
        )
    Console(width=200).print(table)


@models_app.command("fetch")
def models_fetch(names: NamesArg = None, models_dir: ModelsDirOpt = None) -> None:
    """Make sure models are available locally, downloading missing ones into the cache."""
    resolver = _resolver(models_dir)
    failed = False
    for name in names or [m.name for m in resolver.manifest.models]:
        try:
            path = resolver.resolve(name)
            typer.echo(f"{name}: {path}")
        except (AssetError, KeyError) as exc:
            typer.secho(f"{name}: {exc}", fg=typer.colors.RED, err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


@models_app.command("verify")
def models_verify(names: NamesArg = None, models_dir: ModelsDirOpt = None) -> None:
    """Check size and sha256 of local model files against the manifest (no download)."""
    resolver = _resolver(models_dir, allow_download=False)
    failed = False
    for name in names or [m.name for m in resolver.manifest.models]:
        try:
            found = resolver.verify(name)
            typer.echo(f"{name}: ok ({found.location.value}: {found.path})")
        except (AssetError, KeyError) as exc:
            typer.secho(f"{name}: {exc}", fg=typer.colors.RED, err=True)
            failed = True
    if failed:
        raise fail("some models are missing or do not match the manifest")


# After list/fetch/verify so that they come first in the help.
register_training_commands(models_app)

__all__ = ["Location", "app"]

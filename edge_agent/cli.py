"""``footfall-agent``: the edge agent's command line. A thin layer over the library."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.cli_options import AgentConfigOpt, LegacyConfigArg, agent_config
from edge_agent.delivery_cli import check_broker, deliver, outbox_app, run_agent
from edge_agent.evaluation.cli import eval_app
from footfall import __version__
from footfall.cli_support import (
    DebugOpt,
    JsonOpt,
    NoFileChecksOpt,
    ReportingGroup,
    config_errors_exit,
    fail,
    print_table,
    report_valid,
    start,
)
from models.assets import AssetError, Location, ModelResolver
from models.cli import register as register_training_commands

if TYPE_CHECKING:
    from edge_agent.process import ClipResult


class AgentCommands(ReportingGroup):
    """``footfall-agent``: the agent library's own errors are one line too."""

    domain_errors = (
        *ReportingGroup.domain_errors,
        ("edge_agent.agent", "AgentError"),
        ("edge_agent.delivery.outbox", "OutboxError"),
        ("edge_agent.build", "BuildError"),
        ("models.assets", "AssetError"),
    )


app = typer.Typer(
    cls=AgentCommands,
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
app.add_typer(eval_app, name="eval")

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
    debug: DebugOpt = False,
) -> None:
    start(verbose=verbose, debug=debug)


@app.command()
def version() -> None:
    """Print the software version."""
    typer.echo(__version__)


@app.command("validate-config")
def validate_config(
    config: AgentConfigOpt = None,
    legacy_config: LegacyConfigArg = None,
    no_file_checks: NoFileChecksOpt = False,
) -> None:
    """Check an agent configuration file and the files it names; print every problem with its
    key path (exit 2)."""
    from edge_agent.config import load_agent_config
    from edge_agent.setup_checks import problems
    from edge_agent.vision.settings import PipelineMode

    path = agent_config(config, legacy_config)
    with config_errors_exit():
        loaded = load_agent_config(path)
    report_valid(path, [] if no_file_checks else problems(loaded))
    # Which mode, in words: the most consequential choice in the file, and a default one.
    if loaded.mode is PipelineMode.PERSON:
        typer.echo(
            "mode: person - bodies are tracked and counted, faces found on them give gender and "
            'age; for cameras that see people whole (street, shop front). Use mode = "face" '
            "for a close-up kiosk camera where bodies are cut off."
        )
    else:
        typer.echo(
            "mode: face - faces are tracked and counted; for close-up kiosk or door cameras. "
            'People who never face the camera are not counted: use mode = "person" (the '
            "default) where bodies are in view."
        )


def _resolver(models_dir: Path | None, allow_download: bool = True) -> ModelResolver:
    return ModelResolver(models_dir=models_dir, allow_download=allow_download)


@models_app.command("list")
def models_list(models_dir: ModelsDirOpt = None, as_json: JsonOpt = False) -> None:
    """Show every model in the manifest, its licence and where it was found (no download)."""
    resolver = _resolver(models_dir)
    table = Table("name", "role", "version", "file", "bytes", "licence", "commercial", "found in")
    for found in resolver.status():
        spec = resolver.model(found.spec.name)
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
    print_table(table, as_json)


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


ClipOpt = Annotated[
    list[Path] | None,
    typer.Option("--clip", help="A video file to process (repeat for several clips)"),
]
SiteOpt = Annotated[
    list[str] | None,
    typer.Option("--site", help="Site of the clips: once for all, or once per --clip"),
]
SpotOpt = Annotated[
    list[str] | None,
    typer.Option("--spot", help="Spot of the clips: once for all, or once per --clip"),
]
StartOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--start",
        help="When each clip's first frame was filmed, ISO 8601 with time zone "
        "(e.g. 2026-05-01T09:00:00+02:00): once for all, or once per --clip",
    ),
]


@app.command()
def process(
    out: Annotated[Path, typer.Option("--out", help="Output folder (events.jsonl + crops/)")],
    clip: ClipOpt = None,
    site: SiteOpt = None,
    spot: SpotOpt = None,
    start: StartOpt = None,
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="Agent id in the events (default: config, or 'local')"),
    ] = None,
    clips: Annotated[
        Path | None,
        typer.Option("--clips", help="TOML or CSV file listing path, site, spot, start (, agent)"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Agent configuration (TOML); defaults otherwise"),
    ] = None,
    models_dir: ModelsDirOpt = None,
    annotate: Annotated[
        Path | None,
        typer.Option("--annotate", help="Also write each clip with boxes, ids and line drawn"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per clip")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline over recorded clips, writing one event per person (JSON lines) and
    face crops into --out. A clip that cannot be read is reported and skipped, one that stops
    decoding early is reported with what was processed of it (exit 1 for either)."""
    import os

    from edge_agent.build import BuildError
    from edge_agent.clips import ClipSpec, ClipSpecError, clips_from_options, load_clips_file
    from edge_agent.config import load_agent_config
    from edge_agent.delivery.jsonl_sink import JsonlFolderSink, SinkError
    from edge_agent.process import ClipResult, process_clips
    from footfall.settings import ConfigError

    specs: list[ClipSpec] = []
    try:
        if clips is not None:
            specs += load_clips_file(clips)
        if clip:
            specs += clips_from_options(clip, site or [], spot or [], start or [], agent)
        elif site or spot or start:
            raise ClipSpecError("--site, --spot and --start describe --clip; no --clip given")
    except ClipSpecError as exc:
        for line in str(exc).splitlines():
            typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if not specs:
        raise fail(
            "nothing to process: give --clip PATH (with --site, --spot, --start) or --clips FILE", 2
        )

    base = None
    if config is not None:
        with config_errors_exit():
            base = load_agent_config(config)
    if agent is not None:
        specs = [c if c.agent else c.model_copy(update={"agent": agent}) for c in specs]
    # FFmpeg prints its own complaints about unreadable files; ours are one line per clip.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        sink = JsonlFolderSink(out)
    except SinkError as exc:
        raise fail(str(exc)) from None

    def reported(result: ClipResult) -> None:
        if result.error is not None:
            typer.secho(f"error: clip {result.error}", fg=typer.colors.RED, err=True)
        elif result.incomplete is not None:
            typer.secho(
                f"error: clip {result.incomplete}; the {result.people} people seen before "
                "that are in the output",
                fg=typer.colors.RED,
                err=True,
            )

    try:
        results = process_clips(
            specs,
            base,
            sink,
            models_dir=models_dir,
            progress=progress,
            annotate=annotate,
            on_result=reported,
        )
    except (BuildError, ConfigError) as exc:
        raise fail(str(exc)) from None
    finally:
        sink.close()
    _print_summary(results, out, as_json)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


def _print_summary(results: list["ClipResult"], out: Path, as_json: bool) -> None:
    from footfall.contract import Direction

    table = Table(
        "clip",
        "site/spot",
        "frames",
        "video s",
        "fps",
        "x real time",
        "people",
        "in",
        "out",
        "passed",
        "gender unknown",
        "status",
    )
    for r in results:
        speed = r.video_seconds / r.wall_seconds if r.wall_seconds > 0 else 0.0
        table.add_row(
            r.clip.path.name,
            f"{r.clip.site}/{r.clip.spot}",
            str(r.frames),
            f"{r.video_seconds:.1f}",
            f"{r.fps:.1f}",
            f"{speed:.1f}",
            str(r.people),
            str(r.directions.get(Direction.IN, 0)),
            str(r.directions.get(Direction.OUT, 0)),
            str(r.directions.get(Direction.PASSED, 0)),
            str(r.unknown_gender),
            "ok" if r.ok else "INCOMPLETE" if r.processed else "FAILED",
        )
    if as_json:
        print_table(table, as_json)
        return
    console = Console(width=160)
    console.print(table)
    console.print(f"events: {out / 'events.jsonl'}")


app.add_typer(outbox_app, name="outbox")
app.command("run")(run_agent)
app.command("deliver")(deliver)
app.command("check-broker")(check_broker)

__all__ = ["Location", "app"]

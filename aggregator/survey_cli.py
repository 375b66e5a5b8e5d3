"""``footfall-aggregator survey`` and ``demo``: recorded clips through the real edge pipeline into
an embedded aggregator, and the site workbook out.

With :mod:`aggregator.embedded` and :mod:`aggregator.demo` this is where the aggregator imports
the edge agent, and nowhere else: the embedded survey runs the agent's pipeline in this process.
:mod:`aggregator.cli` registers the two commands.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from aggregator.report.wording import footage_text, share_text
from footfall.cli_support import config_errors_exit, fail, setup_errors_exit


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

    # A folder named on the command line must exist: a typo would otherwise run the demo on
    # whatever else is found, without a word.
    for option, folder in (("--samples-dir", samples_dir), ("--models-dir", models_dir)):
        if folder is not None and not folder.is_dir():
            raise fail(f"{option} {folder}: no such folder; give the folder that holds them")
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
    from footfall.preflight import check_writable_directory
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
    with setup_errors_exit():
        check_writable_directory("--out", out)

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
        for export in wb.exports:
            typer.echo(f"person list: {export}")
        if wb.crops_missing:
            typer.echo(
                f"  {wb.crops_missing} face crop(s) could not be read: those rows keep only the link"
            )
        typer.echo(
            f"  {wb.site}, {wb.period.describe()}: {wb.people} people at {len(wb.spots)} spots"
        )
        for s in wb.spots:
            footage = footage_text(s.coverage_hours)
            seen = (
                f"{s.people} people in {footage} of footage, {s.people_per_hour:.0f} per hour"
                if s.people_per_hour is not None
                else f"{s.people} people in {footage} of footage"
            )
            women = share_text(s.women_share, s.women_ci)
            typer.echo(f"  #{s.rank} {s.spot}: {seen}; women {women} of {s.gender_known} judged")
    if not result.ok:
        raise typer.Exit(1)

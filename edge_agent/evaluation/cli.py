"""``footfall-agent eval ...``: scenario videos, the standard suite and the benchmarks, thin over
:mod:`edge_agent.evaluation`. Heavy imports happen inside the commands, so the agent's other
commands do not pay for them."""

import json
import os
import platform
import tomllib
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from footfall.cli_support import fail, one_spelling

eval_app = typer.Typer(
    help="Evaluate the pipeline: scenario videos with exact ground truth, the standard suite, "
    "detector, age/gender and real-clip benchmarks.",
    no_args_is_help=True,
)
scenario_app = typer.Typer(help="Make and score single scenario videos.", no_args_is_help=True)
eval_app.add_typer(scenario_app, name="scenario")

DEFAULT_RESULTS = Path("edge_agent/evaluation/results")

SharedOpt = Annotated[
    Path | None,
    typer.Option(
        "--shared",
        help="The shared folder (models/, data/, video/); default: $FOOTFALL_SHARED_DIR",
        show_default=False,
    ),
]
SpecOpt = Annotated[
    Path | None, typer.Option("--spec", help="Scenario knobs (TOML, keys of ScenarioSpec)")
]
NameOpt = Annotated[
    str | None, typer.Option("--scenario", help="A scenario of the standard suite, by name")
]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--faces-split", help="UTKFace split of the faces: test (report) or val/train (tune)"
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Agent configuration (TOML) for our pipeline; defaults otherwise"
    ),
]
WhichOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pipeline",
        help="person, face and/or seed-style (default: face and seed-style on scenarios, "
        "all three on real clips)",
    ),
]


def _shared(shared: Path | None) -> Path:
    value = shared or (
        Path(os.environ["FOOTFALL_SHARED_DIR"]) if os.environ.get("FOOTFALL_SHARED_DIR") else None
    )
    if value is None:
        raise fail(
            "give --shared or set FOOTFALL_SHARED_DIR (the folder with models/, data/, video/)", 2
        )
    if not (value / "models").is_dir():
        raise fail(f"{value} has no models/ folder", 2)
    return value


def _resolver(shared: Path) -> Any:
    from models.assets import ModelResolver

    return ModelResolver(models_dir=shared / "models", allow_download=False)


def _spec(spec: Path | None, name: str | None, split: str) -> Any:
    from edge_agent.evaluation.scenario import ScenarioSpec
    from edge_agent.evaluation.suite import suite_specs

    if (spec is None) == (name is None):
        raise fail("give exactly one of --spec FILE and --scenario NAME", 2)
    if split not in ("train", "val", "test"):
        raise fail(f"--faces-split must be train, val or test, got {split!r}", 2)
    if name is not None:
        try:
            return suite_specs([name], split)[0]  # type: ignore[arg-type]
        except ValueError as exc:
            raise fail(str(exc), 2) from None
    assert spec is not None
    try:
        data = tomllib.loads(spec.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise fail(f"{spec}: {exc}", 2) from None
    data.setdefault("faces_split", split)
    try:
        return ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(spec)"
            typer.secho(f"error: {spec}: {where}: {err['msg']}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _base_config(config: Path | None) -> Any:
    from edge_agent.config import load_agent_config
    from edge_agent.evaluation.evaluate import eval_config
    from footfall.cli_support import config_errors_exit

    if config is None:
        return eval_config()
    with config_errors_exit():
        loaded = load_agent_config(config)
    return loaded.model_copy(update={"site": "eval", "spot": "scenario", "agent": "eval"})


def _configs(which: list[str] | None, real: bool = False) -> tuple[Any, ...]:
    """The pipelines asked for. Synthetic scenarios draw heads on flat bodies, made for face
    mode, so person mode runs on them only when asked."""
    from edge_agent.evaluation.evaluate import Config

    default = list(Config) if real else [Config.FACE, Config.SEED]
    try:
        return tuple(Config(w) for w in which) if which else tuple(default)
    except ValueError:
        raise fail(
            f"--pipeline must be person, face or seed-style, got {', '.join(which or [])}", 2
        ) from None


def _print_scores(scores: list[Any]) -> None:
    for s in scores:
        typer.echo(json.dumps(asdict(s)))


@scenario_app.command("make")
def scenario_make(
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.mp4 and <name>.gt.json")],
    spec: SpecOpt = None,
    scenario: NameOpt = None,
    faces_split: SplitOpt = "test",
    shared: SharedOpt = None,
) -> None:
    """Render a scenario to a video file and its ground truth (JSON)."""
    from edge_agent.evaluation.scenario import ScenarioError, write_scenario

    folder = _shared(shared)
    chosen = _spec(spec, scenario, faces_split)
    out.mkdir(parents=True, exist_ok=True)
    video, gt_path = out / f"{chosen.name}.mp4", out / f"{chosen.name}.gt.json"
    try:
        gt = write_scenario(chosen, folder, video, gt_path)
    except ScenarioError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{video}: {gt.frames} frames, {len(gt.people)} people; ground truth {gt_path}")


@scenario_app.command("run")
def scenario_run(
    spec: SpecOpt = None,
    scenario: NameOpt = None,
    video: Annotated[Path | None, typer.Option("--video", help="A video made by `make`")] = None,
    gt: Annotated[Path | None, typer.Option("--gt", help="Its ground truth (with --video)")] = None,
    faces_split: SplitOpt = "test",
    pipeline: WhichOpt = None,
    config: ConfigOpt = None,
    shared: SharedOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the scores as JSON here")
    ] = None,
) -> None:
    """Run the pipeline(s) on a scenario (rendered on the fly, or a made video) and score them."""
    from edge_agent.evaluation.evaluate import evaluate_spec, evaluate_video
    from edge_agent.evaluation.scenario import GroundTruth, ScenarioError

    folder = _shared(shared)
    resolver = _resolver(folder)
    configs = _configs(pipeline)
    base = _base_config(config)
    try:
        if video is not None or gt is not None:
            if video is None or gt is None:
                raise fail("--video and --gt go together", 2)
            scores = evaluate_video(
                video, GroundTruth.load(gt), resolver, configs=configs, base=base
            )
        else:
            _, scores = evaluate_spec(
                _spec(spec, scenario, faces_split), folder, resolver, configs=configs, base=base
            )
    except (ScenarioError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    _print_scores(scores)
    if out is not None:
        out.write_text(json.dumps([asdict(s) for s in scores], indent=2) + "\n", encoding="utf-8")


@eval_app.command("suite")
def suite(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for standard_suite.json and .md")
    ] = DEFAULT_RESULTS,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Only these scenarios (repeat)")
    ] = None,
    faces_split: SplitOpt = "test",
    pipeline: WhichOpt = None,
    config: ConfigOpt = None,
    shared: SharedOpt = None,
) -> None:
    """Run the standard suite (ours and seed-style) and write JSON + a markdown table."""
    from edge_agent.evaluation.suite import run_suite, write_suite

    folder = _shared(shared)
    if faces_split not in ("train", "val", "test"):
        raise fail(f"--faces-split must be train, val or test, got {faces_split!r}", 2)
    stem = "standard_suite" if faces_split == "test" else f"standard_suite_{faces_split}"
    try:
        result = run_suite(
            folder,
            _resolver(folder),
            names=scenario,
            configs=_configs(pipeline),
            faces_split=faces_split,  # type: ignore[arg-type]
            base=_base_config(config),
            progress=lambda name: typer.echo(f"scenario {name} ...", err=True),
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    js, md = write_suite(result, out, stem)
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"written: {js}, {md}")


def _meta(command: str) -> dict[str, object]:
    import cv2

    return {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


@eval_app.command("detectors")
def detectors(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for detectors.json and .md")
    ] = DEFAULT_RESULTS,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N images")] = None,
    shared: SharedOpt = None,
) -> None:
    """Precision, recall and AP of YuNet (several sizes) and the seed's SSD on WIDER FACE."""
    import cv2

    from edge_agent.evaluation.detector_bench import (
        bench_detectors,
        markdown,
        standard_detectors,
        to_json,
    )

    folder = _shared(shared)
    cv2.setNumThreads(1)
    meta = _meta("footfall-agent eval detectors" + (f" --limit {limit}" if limit else ""))
    scores = bench_detectors(
        folder / "data" / "wider_val_subset", standard_detectors(folder / "models"), limit=limit
    )
    note = (
        f"Generated by `{meta['command']}` on {meta['date']} (one thread, load average at start "
        f"{meta['load_average_at_start']}). 200 images stretched to 416x416; IoU >= 0.5; "
        "protocol in `edge_agent/evaluation/detector_bench.py`."
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "detectors.json").write_text(to_json(scores, meta) + "\n", encoding="utf-8")
    text = markdown(scores, note)
    (out / "detectors.md").write_text(text, encoding="utf-8")
    typer.echo(text)


@eval_app.command("agegender")
def agegender(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for agegender.json and .md")
    ] = DEFAULT_RESULTS,
    split: Annotated[
        str, typer.Option("--split", help="test (report) or val (choose settings)")
    ] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="An even slice of N faces")] = None,
    shared: SharedOpt = None,
) -> None:
    """Gender and age group on UTKFace through the edge's detector, alignment and classifier."""
    import cv2

    from edge_agent.evaluation.agegender_bench import markdown, prepare, score, to_json
    from edge_agent.vision.detection import YuNetDetector
    from models.runtime.classifier import cydral_classifier

    folder = _shared(shared)
    if split not in ("train", "val", "test"):
        raise fail(f"--split must be train, val or test, got {split!r}", 2)
    cv2.setNumThreads(1)
    models = folder / "models"
    meta = _meta(
        f"footfall-agent eval agegender --split {split}" + (f" --limit {limit}" if limit else "")
    )
    detector = YuNetDetector(models / "face_detection_yunet_2023mar.onnx", input_width=320)
    classifier = cydral_classifier(models / "gender-v1.onnx", models / "age-v1.onnx")
    people = prepare(
        folder / "data" / "utkface", detector, classifier.chip_size, split=split, limit=limit
    )
    scores = score(people, classifier)
    note = (
        f"Generated by `{meta['command']}` on {meta['date']} (load average at start "
        f"{meta['load_average_at_start']}). UTKFace `{split}` split, {len(people)} faces; K = 5 "
        "views per face (photo, small, defocused, rotated +8, rotated -8 and dim); method in "
        "`edge_agent/evaluation/agegender_bench.py`."
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = "agegender" if split == "test" and limit is None else f"agegender_{split}"
    (out / f"{stem}.json").write_text(to_json(scores, meta) + "\n", encoding="utf-8")
    text = markdown(scores, note)
    (out / f"{stem}.md").write_text(text, encoding="utf-8")
    typer.echo(text)


@eval_app.command("clips")
def clips(
    pipeline: WhichOpt = None,
    config: ConfigOpt = None,
    shared: SharedOpt = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for clips.json and .md")
    ] = DEFAULT_RESULTS,
) -> None:
    """The real clips with body-box ground truth: distinct people seen vs walking through."""
    import cv2

    from edge_agent.evaluation.evaluate import clips_markdown, evaluate_clip

    folder = _shared(shared)
    cv2.setNumThreads(1)
    resolver = _resolver(folder)
    meta = _meta("footfall-agent eval clips")
    scores = []
    for name in ("tud_stadtmitte.mp4", "vtest.avi"):
        clip = folder / "video" / name
        gt_txt = clip.with_name(clip.stem + ".gt.txt")
        scores += evaluate_clip(
            clip, gt_txt, resolver, configs=_configs(pipeline, real=True), base=_base_config(config)
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "clips.json").write_text(
        json.dumps({"meta": meta, "scores": [asdict(s) for s in scores]}, indent=2) + "\n",
        encoding="utf-8",
    )
    text = clips_markdown(scores, meta)
    (out / "clips.md").write_text(text, encoding="utf-8")
    typer.echo(text)


def _line(text: str | None) -> tuple[tuple[float, float], tuple[float, float]] | None:
    if text is None:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise fail(
            f"--line must be x1,y1,x2,y2 (fractions of the frame), got {text!r}", 2
        ) from None
    return (x1, y1), (x2, y2)


@eval_app.command("mot")
def mot(
    clip: Annotated[
        list[Path], typer.Option("--clip", help="A video; repeat for several", show_default=False)
    ],
    gt: Annotated[
        list[Path] | None,
        typer.Option(
            "--gt",
            help="Its MOTChallenge ground truth, one per --clip (default: <clip stem>.gt.txt "
            "beside it)",
            show_default=False,
        ),
    ] = None,
    line: Annotated[
        str | None,
        typer.Option(
            "--line",
            help="Counting line x1,y1,x2,y2 in fractions of the frame (default: the config's)",
        ),
    ] = None,
    pipeline: WhichOpt = None,
    config: ConfigOpt = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="Model folder (default: $FOOTFALL_MODELS_DIR or bundled)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write mot.json and mot.md into this folder")
    ] = None,
    # --models-dir as every other command spells it; the old name warns for this release.
    legacy_models: Annotated[Path | None, typer.Option("--models", hidden=True)] = None,
) -> None:
    """Score person mode, face mode and seed-style on real clips with MOTChallenge ground truth:
    pedestrians found/split, events on nobody, ID switches, IDF1, MOTA, in/out crossings."""
    import cv2

    from edge_agent.evaluation.mot import evaluate_mot, markdown
    from edge_agent.evaluation.mot_truth import TruthError, load_mot
    from models.assets import ModelResolver

    models_dir = one_spelling(models_dir, legacy_models, new="--models-dir", old="--models")
    truths = gt or [c.with_name(c.stem + ".gt.txt") for c in clip]
    if len(truths) != len(clip):
        raise fail(f"give one --gt per --clip ({len(clip)} clips, {len(truths)} --gt)", 2)
    for c in clip:
        if not c.is_file():
            raise fail(f"clip {c} not found: give the path of a video file", 2)
    base = _base_config(config)
    if (counting_line := _line(line)) is not None:
        base = base.model_copy(
            update={"counting": base.counting.model_copy(update={"line": counting_line})}
        )
    env_models = os.environ.get("FOOTFALL_MODELS_DIR")
    resolver = ModelResolver(
        models_dir=models_dir or (Path(env_models) if env_models else None), allow_download=False
    )
    cv2.setNumThreads(1)
    scores = []
    for c, t in zip(clip, truths, strict=True):
        try:
            truth = load_mot(t)
        except TruthError as exc:
            raise fail(str(exc), 2) from None
        scores += evaluate_mot(c, truth, resolver, configs=_configs(pipeline, real=True), base=base)
    meta = _meta("footfall-agent eval mot " + " ".join(f"--clip {c.name}" for c in clip))
    text = markdown(scores, str(meta["command"]), str(meta["date"]))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "mot.json").write_text(
            json.dumps({"meta": meta, "scores": [asdict(s) for s in scores]}, indent=2) + "\n",
            encoding="utf-8",
        )
        (out / "mot.md").write_text(text, encoding="utf-8")
    typer.echo(text)

"""Commands to train, export, evaluate and fine-tune the age/gender models, and write their cards.

Registered on ``footfall-agent models``. Each command is a thin call into ``models.training``;
PyTorch is imported only inside the commands that need it, so the rest of the CLI (and the edge)
works without the ``train`` extra.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from footfall.cli_support import fail
from models.assets import AssetError, ModelResolver

if TYPE_CHECKING:
    from models.training.data import FaceFolder, PreparedFaces

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).parent / "cards"

ModelsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--models-dir", help="Directory holding model files (default: $FOOTFALL_MODELS_DIR)"
    ),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="CSV with file, age, gender[, split]; default: split.csv / labels.csv in the folder, "
        "else UTKFace file names",
    ),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Landmark / chip cache (default: ~/.cache/footfall/faces)"),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars")]


def _errors() -> tuple[type[BaseException], ...]:
    from models.training import TrainingError

    return (TrainingError, AssetError, ImportError, OSError)


def _prepared(
    folder: Path, labels: Path | None, models_dir: Path | None, cache: Path | None, progress: bool
) -> tuple[FaceFolder, PreparedFaces, ModelResolver]:
    from models.training.data import FaceFolder, prepare

    resolver = ModelResolver(models_dir=models_dir)
    data = FaceFolder.open(folder, labels)
    return data, prepare(data, data.labels, resolver.resolve("yunet"), cache, progress), resolver


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app`` (the ``models`` sub-app of footfall-agent)."""

    @app.command("train")
    def train_cmd(
        folder: Annotated[Path, typer.Argument(help="Labelled face folder (e.g. UTKFace)")],
        out: Annotated[Path, typer.Option("--out", help="Run directory (checkpoints, history)")],
        arch: Annotated[str, typer.Option("--arch", help="compact or levi-hassner")] = "compact",
        labels: LabelsOpt = None,
        epochs: Annotated[int, typer.Option(help="Epochs (the LR schedule spans them)")] = 12,
        epoch_samples: Annotated[
            int | None, typer.Option(help="Samples per epoch (default: the train split)")
        ] = None,
        batch_size: Annotated[int, typer.Option(help="Batch size")] = 128,
        lr: Annotated[float | None, typer.Option(help="Peak learning rate")] = None,
        balance: Annotated[
            float, typer.Option(help="Age-group sampling: 0 as is, 0.5 sqrt, 1 uniform")
        ] = 0.5,
        patience: Annotated[int, typer.Option(help="Early stop after this many flat epochs")] = 3,
        seed: Annotated[int, typer.Option(help="Random seed")] = 0,
        max_minutes: Annotated[
            float | None, typer.Option(help="Stop after the epoch that would pass this budget")
        ] = None,
        limit_train: Annotated[
            int | None, typer.Option(help="Use at most this many training faces")
        ] = None,
        limit_val: Annotated[
            int | None, typer.Option(help="Validate on at most this many faces")
        ] = None,
        threads: Annotated[int | None, typer.Option(help="PyTorch threads")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt")] = False,
        init_from: Annotated[
            Path | None, typer.Option(help="Start from this checkpoint's weights")
        ] = None,
        models_dir: ModelsDirOpt = None,
        cache_dir: CacheOpt = None,
        progress: ProgressOpt = True,
    ) -> None:
        """Train a multi-task (gender + age) net on the train split, early-stopping on val."""
        try:
            from models.training.nets import Arch
            from models.training.train import TrainConfig, train

            try:
                arch_value = Arch(arch)
            except ValueError:
                raise fail(f"--arch must be compact or levi-hassner, not {arch!r}") from None
            _, prepared, _ = _prepared(folder, labels, models_dir, cache_dir, progress)
            if limit_train is not None:
                prepared = _limit_train(prepared, limit_train, seed)
            cfg = TrainConfig(
                arch=arch_value,
                epochs=epochs,
                epoch_samples=epoch_samples,
                batch_size=batch_size,
                lr=lr if lr is not None else (3e-4 if arch_value is Arch.LEVI_HASSNER else 3e-3),
                balance=balance,
                patience=patience,
                seed=seed,
                max_minutes=max_minutes,
                limit_val=limit_val,
                threads=threads,
            )
            result = train(
                prepared, out, cfg, resume=resume, progress=progress, init_from=init_from
            )
        except _errors() as exc:
            raise fail(str(exc)) from None
        typer.echo(
            f"best epoch {result.best_epoch} ({result.stopped}): {json.dumps(result.best_val)}\n"
            f"checkpoint: {result.best_checkpoint}"
        )

    @app.command("export")
    def export_cmd(
        checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (best.pt of a run)")],
        out: Annotated[Path, typer.Argument(help="ONNX file to write")],
    ) -> None:
        """Export to ONNX and check cv2.dnn against PyTorch (fails beyond the tolerance)."""
        try:
            from models.training.export import export_onnx

            report = export_onnx(checkpoint, out)
        except _errors() as exc:
            raise fail(str(exc)) from None
        typer.echo(
            f"{report.onnx}: {report.size:,} bytes, sha256 {report.sha256}, "
            f"max |cv2.dnn - torch| = {report.max_abs_diff:.1e} (tolerance {report.tolerance:.0e})"
        )

    @app.command("evaluate")
    def evaluate_cmd(
        models: Annotated[
            list[str],
            typer.Argument(
                help="default (what the edge loads), cydral, a manifest pair prefix "
                "(faceres, faceapi, utk-compact) or an .onnx path"
            ),
        ],
        data: Annotated[Path, typer.Option("--data", help="Labelled face folder")],
        split: Annotated[str, typer.Option(help="Split to evaluate (never train on it)")] = "test",
        labels: LabelsOpt = None,
        name: Annotated[
            str | None, typer.Option(help="Name of the result (default: the model's)")
        ] = None,
        gender_weights: Annotated[
            str | None, typer.Option(help="Ensemble: comma-separated gender weight per model")
        ] = None,
        age_weights: Annotated[
            str | None, typer.Option(help="Ensemble: comma-separated age weight per model")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="Evaluate a slice of the split")] = None,
        timing_faces: Annotated[
            int, typer.Option(help="Faces timed one by one on one thread (0: no timing)")
        ] = 200,
        out_dir: Annotated[Path, typer.Option(help="Where the JSON result goes")] = CARDS_DIR,
        training_data: Annotated[
            str | None,
            typer.Option(
                help="What an .onnx path was trained on (for its card; manifest models say it)"
            ),
        ] = None,
        description: Annotated[
            str | None, typer.Option(help="One line about an .onnx path model, for its card")
        ] = None,
        group_temperature: Annotated[
            float | None,
            typer.Option(help="Calibration of the age-group confidence (default: the manifest's)"),
        ] = None,
        timing_only: Annotated[
            bool,
            typer.Option(
                "--timing-only",
                help="Only (re)measure the time per face of an existing NAME.eval.json "
                "(accuracy can be measured while a training runs, times cannot)",
            ),
        ] = False,
        models_dir: ModelsDirOpt = None,
        cache_dir: CacheOpt = None,
        progress: ProgressOpt = True,
    ) -> None:
        """Evaluate one model (or an ensemble of several) and write NAME.eval.json."""
        try:
            from models.training.data import Split, subsample
            from models.training.evaluate import add_timing, ensemble, evaluate, load_model

            # Arguments and models first: a typo fails at once, before landmarks are computed.
            try:
                wanted = Split(split)
            except ValueError:
                raise fail(f"--split must be train, val or test, not {split!r}") from None
            if group_temperature is not None and group_temperature <= 0:
                raise fail(f"--group-temperature must be > 0, got {group_temperature}")
            resolver = ModelResolver(models_dir=models_dir)
            loaded = [load_model(m, resolver) for m in models]
            if len(loaded) > 1 or gender_weights or age_weights:
                gw = _weights(gender_weights, len(loaded))
                aw = _weights(age_weights, len(loaded))
                model = ensemble(name or "+".join(m.name for m in loaded), loaded, gw, aw)
            else:
                model = replace(loaded[0], name=name) if name else loaded[0]
            if group_temperature is not None:
                model = replace(model, group_temperature=group_temperature)
            if training_data or description:
                if not models[0].endswith(".onnx") or len(loaded) > 1:
                    raise fail(
                        "--training-data/--description are for one model given as an .onnx path"
                    )
                model = replace(
                    model,
                    training_data=training_data or model.training_data,
                    description=description or model.description,
                )
            folder, prepared, _ = _prepared(data, labels, models_dir, cache_dir, progress)
            faces = prepared.where(wanted)
            if limit is not None:
                keep = subsample(list(range(len(faces.labels))), limit, 0)
                faces = faces.subset(keep)
            path = out_dir / f"{model.name}.eval.json"
            if timing_only:
                if not path.is_file():
                    raise fail(f"--timing-only needs an existing {path}")
                result = add_timing(
                    json.loads(path.read_text()), model, folder.images, faces, timing_faces
                )
                # What the model is (not measured) may be corrected without re-measuring it.
                result.update(
                    licence=model.licence,
                    training_data=model.training_data,
                    description=model.description,
                )
            else:
                result = evaluate(model, folder.images, faces, split, timing_faces)
        except (*_errors(), ValueError) as exc:  # type: ignore[misc]
            raise fail(str(exc)) from None
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        for mode, rep in result["modes"].items():
            o = rep["overall"]
            typer.echo(
                f"{model.name} [{mode}] gender {o['gender_acc']:.3f}  group {o['group_exact']:.3f}"
                f"  1-off {o['group_one_off']:.3f}  MAE {o['mae']:.2f}"
            )
        typer.echo(f"wrote {path}")

    @app.command("calibrate")
    def calibrate_cmd(
        models: Annotated[
            list[str], typer.Argument(help="cydral, a manifest pair prefix or an .onnx path")
        ],
        data: Annotated[Path, typer.Option("--data", help="Labelled face folder")],
        split: Annotated[str, typer.Option(help="Held-out split to fit on (never test)")] = "val",
        flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip averaging")] = True,
        gender_weights: Annotated[str | None, typer.Option(help="Ensemble gender weights")] = None,
        age_weights: Annotated[str | None, typer.Option(help="Ensemble age weights")] = None,
        labels: LabelsOpt = None,
        models_dir: ModelsDirOpt = None,
        cache_dir: CacheOpt = None,
        progress: ProgressOpt = True,
    ) -> None:
        """Fit the temperatures of the gender probability and of the age-group confidence (for
        the manifest's gender_temperature and confidence_temperature) on a held-out split."""
        try:
            from models.training.data import Split
            from models.training.evaluate import ensemble, load_model, predict_faces
            from models.training.metrics import fit_gender_temperature, fit_group_temperature

            if split == Split.TEST.value:
                raise fail("calibrate fits on held-out data; the test split is for evaluation")
            resolver = ModelResolver(models_dir=models_dir)
            # The gender head as the network answers: the new temperature replaces the old one.
            loaded = [load_model(m, resolver, calibrated=False) for m in models]
            model = (
                ensemble(
                    "ensemble",
                    loaded,
                    _weights(gender_weights, len(loaded)),
                    _weights(age_weights, len(loaded)),
                )
                if len(loaded) > 1
                else loaded[0]
            )
            folder, prepared, _ = _prepared(data, labels, models_dir, cache_dir, progress)
            faces = prepared.where(Split(split))
            p_female, age_probs = predict_faces(model.model, folder.images, faces, flip)
            t, before, after = fit_group_temperature(age_probs, faces.ages)
            gender = fit_gender_temperature(p_female, faces.gender_index == 0)
        except (*_errors(), ValueError) as exc:  # type: ignore[misc]
            raise fail(str(exc)) from None
        typer.echo(
            f"confidence_temperature = {t:g}  (group ECE on {split}: {before:.3f} -> {after:.3f})"
        )
        # An ensemble has no manifest entry to keep a gender temperature in, and its members'
        # own are left out above: only a single model's is worth printing.
        if len(loaded) == 1:
            typer.echo(
                f"gender_temperature = {gender.temperature:g}  (gender ECE on {split}: "
                f"{gender.ece_before:.3f} -> {gender.ece_after:.3f}, NLL "
                f"{gender.nll_before:.3f} -> {gender.nll_after:.3f})"
            )

    @app.command("site-standin")
    def site_standin_cmd(
        source: Annotated[Path, typer.Argument(help="UTKFace folder (its val split is used)")],
        out: Annotated[Path, typer.Argument(help="Folder to write crops + labels.csv into")],
        limit: Annotated[int | None, typer.Option(help="At most this many faces")] = None,
        seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    ) -> None:
        """Write degraded stand-in site crops in the operator's labelling format."""
        try:
            from models.training.data import FaceFolder
            from models.training.site import make_site_standin

            written = make_site_standin(FaceFolder.open(source), out, limit=limit, seed=seed)
        except _errors() as exc:
            raise fail(str(exc)) from None
        typer.echo(f"wrote {len(written)} crops and {out / 'labels.csv'}")

    @app.command("finetune")
    def finetune_cmd(
        checkpoint: Annotated[Path, typer.Argument(help="Checkpoint to start from")],
        site: Annotated[Path, typer.Argument(help="Site crop folder with labels.csv")],
        out: Annotated[Path, typer.Option("--out", help="Run directory")],
        epochs: Annotated[int, typer.Option(help="Epochs")] = 4,
        lr: Annotated[float, typer.Option(help="Peak learning rate")] = 1e-4,
        seed: Annotated[int, typer.Option(help="Random seed")] = 0,
        models_dir: ModelsDirOpt = None,
        cache_dir: CacheOpt = None,
        progress: ProgressOpt = True,
    ) -> None:
        """Fine-tune on the site folder's train/val part; its test part stays held out."""
        try:
            from models.training.finetune import finetune

            _, prepared, _ = _prepared(site, None, models_dir, cache_dir, progress)
            result = finetune(
                checkpoint, prepared, out, epochs=epochs, lr=lr, seed=seed, progress=progress
            )
        except _errors() as exc:
            raise fail(str(exc)) from None
        typer.echo(
            f"best epoch {result.best_epoch}: {json.dumps(result.best_val)}\n"
            f"checkpoint: {result.best_checkpoint}"
        )

    @app.command("cards")
    def cards_cmd(
        cards_dir: Annotated[Path, typer.Option(help="Folder of *.eval.json")] = CARDS_DIR,
    ) -> None:
        """(Re)write the markdown model cards and the comparison from the evaluation JSON."""
        from models.training.cards import write_cards

        if not any(cards_dir.glob("*.eval.json")):
            raise fail(
                f"--cards-dir {cards_dir}: no *.eval.json in it; write them with "
                "`footfall-agent models evaluate`"
            )
        try:
            written = write_cards(cards_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise fail(str(exc)) from None
        for path in written:
            typer.echo(f"wrote {path}")


def _weights(text: str | None, n: int) -> list[float]:
    if text is None:
        return [1.0] * n
    values = [float(v) for v in text.split(",")]
    if len(values) != n:
        raise ValueError(f"{len(values)} weights given for {n} models")
    return values


def _limit_train(prepared: PreparedFaces, limit: int, seed: int) -> PreparedFaces:
    from models.training.data import Split, subsample

    train_idx = [i for i, lab in enumerate(prepared.labels) if lab.split is Split.TRAIN]
    keep = set(subsample(train_idx, limit, seed)) if limit < len(train_idx) else set(train_idx)
    return prepared.subset(
        [i for i, lab in enumerate(prepared.labels) if lab.split is not Split.TRAIN or i in keep]
    )

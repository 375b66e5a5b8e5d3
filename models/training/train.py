"""Multi-task training (gender + age) on a labelled face folder, on the CPU.

Age is learnt as a distribution over the 81 one-year bins (a Gaussian around the true age, wider
for older faces whose age is less certain) plus an L1 term on the expected age; gender with
cross-entropy. The age imbalance is handled by sampling: each face is drawn with probability
proportional to ``count(its age group) ** -balance`` (0 = as is, 0.5 = square root, 1 = uniform
over groups).

Each epoch ends with a validation pass; ``last.pt`` (everything needed to resume, RNG included)
and ``best.pt`` (the best validation score so far) are written, and training stops early after
``patience`` epochs without improvement, or when the time budget would run out.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.faces import AGE_BIN_YEARS
from models.training import TRAIN_EXTRA_HINT, TrainingError
from models.training.augment import AugmentConfig, batch
from models.training.data import PreparedFaces, Split
from models.training.metrics import Scores, scores
from models.training.nets import AGE_BINS, GEOMETRY, Arch, build, parameter_count

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(TRAIN_EXTRA_HINT) from exc

F = torch.nn.functional
log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    arch: Arch = Arch.COMPACT
    epochs: int = 12
    epoch_samples: int | None = None  # samples per epoch; default: the training set's size
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    balance: float = 0.5
    label_smoothing: float = 0.05
    age_l1_weight: float = 0.1
    patience: int = 3
    seed: int = 0
    max_minutes: float | None = None
    limit_val: int | None = None
    threads: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainingError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise TrainingError(f"batch_size must be >= 2, got {self.batch_size}")
        if not 0 <= self.balance <= 1:
            raise TrainingError(f"balance must be in 0..1, got {self.balance}")
        if self.lr <= 0:
            raise TrainingError(f"lr must be > 0, got {self.lr}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch"] = self.arch.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["arch"] = Arch(d["arch"])
        d["augment"] = AugmentConfig(
            **{**d["augment"], "downscale_px": tuple(d["augment"]["downscale_px"])}
        )
        return cls(**d)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val: dict[str, float]
    score: float
    seconds: float
    lr: float


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    best_epoch: int
    best_val: dict[str, float]
    history: list[EpochRecord]
    stopped: str


def age_targets(ages: Any) -> Any:
    """Soft targets over the 81 bins: a Gaussian around each (capped) age."""
    centres = torch.from_numpy(AGE_BIN_YEARS).float()
    a = ages.clamp(max=float(AGE_BIN_YEARS[-1])).view(-1, 1)
    sigma = (1.0 + 0.08 * a).clamp(min=1.0)
    t = torch.exp(-0.5 * ((centres.view(1, -1) - a) / sigma) ** 2)
    return t / t.sum(dim=1, keepdim=True)


def multitask_loss(
    gender_logits: Any, age_logits: Any, gender_index: Any, ages: Any, cfg: TrainConfig
) -> Any:
    centres = torch.from_numpy(AGE_BIN_YEARS).float()
    gender_loss = F.cross_entropy(gender_logits, gender_index, label_smoothing=cfg.label_smoothing)
    log_p = F.log_softmax(age_logits, dim=1)
    age_ce = -(age_targets(ages) * log_p).sum(dim=1).mean()
    expected = (log_p.exp() * centres).sum(dim=1)
    age_l1 = (expected - ages.clamp(max=float(AGE_BIN_YEARS[-1]))).abs().mean()
    return gender_loss + age_ce + cfg.age_l1_weight * age_l1


def sampling_weights(faces: PreparedFaces, balance: float) -> Any:
    groups = faces.group_index
    counts = np.bincount(groups, minlength=8).astype(np.float64)
    w = np.power(np.maximum(counts[groups], 1.0), -balance)
    return torch.from_numpy(w / w.sum())


def predict_torch(
    net: Any, faces: PreparedFaces, arch: Arch, batch_size: int = 256, flip: bool = False
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """p_female and age bin probabilities of prepared faces (their un-jittered chips)."""
    geometry = GEOMETRY[arch]
    net.eval()
    p_female, age_probs = [], []
    with torch.inference_mode():
        for start in range(0, len(faces.labels), batch_size):
            chips = torch.from_numpy(faces.chips[start : start + batch_size])
            views = [None, torch.ones(chips.shape[0], dtype=torch.bool)] if flip else [None]
            g_sum: Any = 0
            a_sum: Any = 0
            for mirror in views:
                g, a = net(batch(chips, geometry, flip=mirror))
                g_sum = g_sum + F.softmax(g, dim=1)
                a_sum = a_sum + F.softmax(a, dim=1)
            p_female.append((g_sum / len(views))[:, 0].numpy())
            age_probs.append((a_sum / len(views)).numpy())
    return np.concatenate(p_female), np.concatenate(age_probs)


def validation_scores(net: Any, faces: PreparedFaces, arch: Arch) -> Scores:
    p_female, age_probs = predict_torch(net, faces, arch)
    female = faces.gender_index == 0
    return scores(p_female, age_probs, faces.ages, female)


def score_of(s: Scores) -> float:
    # Gender and age group weigh the same; MAE breaks ties between equal accuracies.
    return s.gender_acc + s.group_exact - s.mae / 100


def _state(
    net: Any,
    opt: Any,
    sched: Any,
    g: Any,
    epoch: int,
    best: float,
    best_epoch: int,
    stale: int,
    history: list[EpochRecord],
    cfg: TrainConfig,
) -> dict[str, Any]:
    return {
        "version": CHECKPOINT_VERSION,
        "arch": cfg.arch.value,
        "config": cfg.to_json(),
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": g.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "best": best,
        "best_epoch": best_epoch,
        "stale": stale,
        "history": [asdict(h) for h in history],
    }


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[Any, Arch, dict[str, Any]]:
    """The net (eval mode) stored in a checkpoint, its architecture and the raw checkpoint."""
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"{path}: checkpoint version {ckpt.get('version')} is not supported")
    arch = Arch(ckpt["arch"])
    net = build(arch)
    net.load_state_dict(ckpt["model"])
    net.eval()
    return net, arch, ckpt


def train(
    faces: PreparedFaces,
    out_dir: Path,
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    init_from: Path | None = None,
) -> TrainResult:
    """Train on ``faces`` (its train split), validate on its val split, write checkpoints.

    ``init_from`` starts from another checkpoint's weights (fine-tuning); ``resume`` continues
    this ``out_dir``'s own ``last.pt`` where it stopped.
    """
    train_set, val_set = faces.where(Split.TRAIN), faces.where(Split.VAL)
    if len(train_set.labels) < cfg.batch_size:
        raise TrainingError(
            f"{len(train_set.labels)} training faces are fewer than one batch ({cfg.batch_size})"
        )
    if not val_set.labels:
        raise TrainingError("no validation faces: early stopping needs a val split")
    if cfg.limit_val is not None and cfg.limit_val < len(val_set.labels):
        # Evenly spaced rather than random: stable across resumes without extra state.
        val_set = val_set.subset(np.linspace(0, len(val_set.labels) - 1, cfg.limit_val).astype(int))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    net = build(cfg.arch).to(memory_format=torch.channels_last)
    if init_from is not None:
        start_net, start_arch, _ = load_checkpoint(init_from)
        if start_arch is not cfg.arch:
            raise TrainingError(f"{init_from} is a {start_arch.value} net, not {cfg.arch.value}")
        net.load_state_dict(start_net.state_dict())
    epoch_samples = cfg.epoch_samples or len(train_set.labels)
    steps = max(1, epoch_samples // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.15
    )
    start_epoch, best, best_epoch, stale = 0, -float("inf"), -1, 0
    history: list[EpochRecord] = []
    if resume and last_path.is_file():
        ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
        if TrainConfig.from_json(ckpt["config"]) != cfg:
            raise TrainingError(f"{last_path} was trained with another configuration; not resuming")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        g.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, best, best_epoch, stale = (
            ckpt["epoch"] + 1,
            ckpt["best"],
            ckpt["best_epoch"],
            ckpt["stale"],
        )
        history = [EpochRecord(**h) for h in ckpt["history"]]
        log.info("resuming %s at epoch %d", last_path, start_epoch + 1)
    (out_dir / "train_config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    log.info(
        "%s: %d parameters, %d train / %d val faces, %d steps of %d per epoch",
        cfg.arch.value,
        parameter_count(net),
        len(train_set.labels),
        len(val_set.labels),
        steps,
        cfg.batch_size,
    )

    weights = sampling_weights(train_set, cfg.balance)
    chips = torch.from_numpy(train_set.chips)
    ages = torch.from_numpy(train_set.ages)
    genders = torch.from_numpy(train_set.gender_index)
    geometry = GEOMETRY[cfg.arch]
    began = time.monotonic()
    stopped = "epochs"
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.monotonic()
        net.train()
        order = torch.multinomial(weights, steps * cfg.batch_size, replacement=True, generator=g)
        total = 0.0
        bar = _bar(range(steps), f"epoch {epoch + 1}/{cfg.epochs}", progress)
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = batch(chips[idx], geometry, g, cfg.augment)
            gl, al = net(x)
            loss = multitask_loss(gl, al, genders[idx], ages[idx], cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            if progress and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        val = validation_scores(net, val_set, cfg.arch)
        score = score_of(val)
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=total / steps,
            val=val.as_dict(),
            score=score,
            seconds=time.monotonic() - t0,
            lr=float(sched.get_last_lr()[0]),
        )
        history.append(record)
        log.info(
            "epoch %d: loss %.3f, val gender %.3f, group %.3f, 1-off %.3f, MAE %.2f (%.0f s)",
            epoch + 1,
            record.train_loss,
            val.gender_acc,
            val.group_exact,
            val.group_one_off,
            val.mae,
            record.seconds,
        )
        if score > best:
            best, best_epoch, stale = score, epoch + 1, 0
            _save(
                _state(net, opt, sched, g, epoch, best, best_epoch, stale, history, cfg), best_path
            )
        else:
            stale += 1
        _save(_state(net, opt, sched, g, epoch, best, best_epoch, stale, history, cfg), last_path)
        (out_dir / "history.json").write_text(
            json.dumps([asdict(h) for h in history], indent=2) + "\n"
        )
        if stale >= cfg.patience:
            stopped = f"early stop: {stale} epochs without improvement"
            break
        if cfg.max_minutes is not None:
            elapsed = time.monotonic() - began
            if elapsed + record.seconds > cfg.max_minutes * 60:
                stopped = f"time budget of {cfg.max_minutes} min"
                break
    best_val = next(h.val for h in history if h.epoch == best_epoch)
    log.debug("best epoch %d (%s)", best_epoch, stopped)
    return TrainResult(out_dir, best_path, best_epoch, best_val, history, stopped)


def _bar(items: range, desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="batch", leave=False)


__all__ = ["AGE_BINS", "TrainConfig", "TrainResult", "load_checkpoint", "predict_torch", "train"]

"""Fine-tuning a trained net on crops labelled at a site.

Starts from a checkpoint's weights and trains on the site folder's ``train`` part with a lower
learning rate, fewer epochs and milder augmentation (the site's own degradation is already in its
crops), early-stopping on its ``val`` part. The ``test`` part is never seen: it is where the
before/after comparison is made.
"""

from __future__ import annotations

from pathlib import Path

from models.training.augment import AugmentConfig
from models.training.data import PreparedFaces
from models.training.train import TrainConfig, TrainResult, load_checkpoint, train

SITE_AUGMENT = AugmentConfig(downscale=0.15, blur=0.1, noise=0.1, colour_cast=0.04)


def finetune(
    checkpoint: Path,
    site: PreparedFaces,
    out_dir: Path,
    epochs: int = 4,
    lr: float = 1e-4,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> TrainResult:
    _, arch, _ = load_checkpoint(checkpoint)
    cfg = TrainConfig(
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        balance=0.0,  # the site's own age mix is what the model will meet there
        patience=3,
        seed=seed,
        augment=SITE_AUGMENT,
    )
    return train(site, out_dir, cfg, progress=progress, init_from=checkpoint)

"""Batch augmentation in PyTorch, drawn from one seeded generator (so runs are reproducible).

Every sample is cut from its context chip by one affine warp that combines the net's crop with
random scale, rotation, shift and mirror -- the same geometry as re-aligning with slightly
different landmarks. Then colour, a fixed-per-batch downscale to CCTV face sizes, blur and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from models.faces import MEAN_RGB, SCALE
from models.training import TRAIN_EXTRA_HINT
from models.training.data import CONTEXT_MARGIN
from models.training.nets import InputGeometry

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(TRAIN_EXTRA_HINT) from exc

F = torch.nn.functional


@dataclass(frozen=True)
class AugmentConfig:
    scale: float = 0.10  # +- relative face size
    rotate_degrees: float = 10.0
    shift: float = 0.06  # +- fraction of the chip, on top of the crop's own freedom
    flip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    colour_cast: float = 0.08  # per-channel gain, like a camera's white balance
    grayscale: float = 0.05
    downscale: float = 0.35  # probability that a sample is shrunk to a CCTV face size and back
    downscale_px: tuple[int, int] = (16, 56)
    blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.4, 1.3)  # in pixels of a 64 px chip
    noise: float = 0.2
    noise_std: float = 6.0  # grey levels


NO_AUGMENT = AugmentConfig(
    scale=0,
    rotate_degrees=0,
    shift=0,
    flip=0,
    brightness=0,
    contrast=0,
    saturation=0,
    colour_cast=0,
    grayscale=0,
    downscale=0,
    blur=0,
    noise=0,
)


def _uniform(g: Any, n: int, low: float, high: float) -> Any:
    return torch.rand(n, generator=g) * (high - low) + low


def _chance(g: Any, n: int, p: float) -> Any:
    return torch.rand(n, generator=g) < p


def to_float_rgb(chips_bgr: Any) -> Any:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) float RGB in 0..255."""
    return chips_bgr.flip(-1).permute(0, 3, 1, 2).float()


def normalise(x: Any) -> Any:
    mean = torch.tensor(MEAN_RGB, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) * SCALE


def warp(
    x: Any, geometry: InputGeometry, g: Any | None, cfg: AugmentConfig, flip: Any | None = None
) -> Any:
    """Cut the net's view from context chips (float NCHW), jittered when ``g`` is given."""
    n = x.shape[0]
    # The face chip spans 1 / (1 + 2 * margin) of the context chip; the net sees crop / chip of it.
    base = geometry.crop / geometry.chip / (1 + 2 * CONTEXT_MARGIN)
    if g is None:
        s, a, tx, ty = torch.full((n,), base), torch.zeros(n), torch.zeros(n), torch.zeros(n)
        mirror = torch.zeros(n, dtype=torch.bool) if flip is None else flip
    else:
        s = base * _uniform(g, n, 1 - cfg.scale, 1 + cfg.scale)
        a = _uniform(g, n, -cfg.rotate_degrees, cfg.rotate_degrees) * math.pi / 180
        room = (geometry.chip - geometry.crop) / geometry.chip / (1 + 2 * CONTEXT_MARGIN)
        t = room + cfg.shift * 2 / (1 + 2 * CONTEXT_MARGIN)
        tx, ty = _uniform(g, n, -t, t), _uniform(g, n, -t, t)
        mirror = _chance(g, n, cfg.flip)
    sx = torch.where(mirror, -s, s)
    theta = torch.stack(
        [
            torch.stack([sx * torch.cos(a), -s * torch.sin(a), tx], dim=1),
            torch.stack([sx * torch.sin(a), s * torch.cos(a), ty], dim=1),
        ],
        dim=1,
    )
    size = (n, 3, geometry.crop, geometry.crop)
    grid = F.affine_grid(theta, size, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric(x: Any, g: Any, cfg: AugmentConfig) -> Any:
    n, _, h, _ = x.shape
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    sat = _uniform(g, n, 1 - cfg.saturation, 1 + cfg.saturation)
    sat = torch.where(_chance(g, n, cfg.grayscale), torch.zeros(n), sat).view(n, 1, 1, 1)
    x = gray + (x - gray) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(g, n, 1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
    brightness = _uniform(g, n, 1 - cfg.brightness, 1 + cfg.brightness).view(n, 1, 1, 1)
    cast = (1 + (torch.rand(n, 3, generator=g) * 2 - 1) * cfg.colour_cast).view(n, 3, 1, 1)
    x = ((x - mean) * contrast + mean) * brightness * cast

    if cfg.downscale > 0:
        # One size per batch keeps it one interpolate call; the mask picks which samples get it.
        low, high = cfg.downscale_px
        small = int(torch.randint(low, high + 1, (1,), generator=g))
        if small < h:
            mask = _chance(g, n, cfg.downscale).view(n, 1, 1, 1)
            shrunk = F.interpolate(x, size=(small, small), mode="area")
            x = torch.where(mask, F.interpolate(shrunk, size=(h, h), mode="bilinear"), x)
    if cfg.blur > 0:
        sigma = float(_uniform(g, 1, *cfg.blur_sigma)) * h / 64
        mask = _chance(g, n, cfg.blur).view(n, 1, 1, 1)
        x = torch.where(mask, _gaussian_blur(x, sigma), x)
    if cfg.noise > 0:
        mask = _chance(g, n, cfg.noise).view(n, 1, 1, 1)
        x = x + mask * torch.randn(x.shape, generator=g) * cfg.noise_std
    return x.clamp(0, 255)


def _gaussian_blur(x: Any, sigma: float) -> Any:
    radius = max(1, math.ceil(2.5 * sigma))
    k = torch.exp(-((torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2) / 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def batch(
    chips_bgr: Any,
    geometry: InputGeometry,
    g: Any | None = None,
    cfg: AugmentConfig = NO_AUGMENT,
    flip: Any | None = None,
) -> Any:
    """uint8 context chips -> the normalised net input; augmented when ``g`` is given."""
    x = warp(to_float_rgb(chips_bgr), geometry, g, cfg, flip)
    if g is not None:
        x = photometric(x, g, cfg)
    return normalise(x).contiguous(memory_format=torch.channels_last)

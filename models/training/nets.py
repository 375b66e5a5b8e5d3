"""The two architectures: the seed's Levi-Hassner net (the reference) and a compact edge net.

Both are multi-task: one trunk, a gender head (logits ordered [female, male], as the Cydral
gender model) and an age head over the Cydral model's 81 age bins (0.25, 1, 2, ..., 80 years), so
an exported network is read exactly like the Cydral pair. Both take the normalised aligned chip
``(rgb - MEAN_RGB) / 256`` in NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.training import TRAIN_EXTRA_HINT

try:
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(TRAIN_EXTRA_HINT) from exc

AGE_BINS = 81


class Arch(StrEnum):
    LEVI_HASSNER = "levi-hassner"
    COMPACT = "compact"


@dataclass(frozen=True)
class InputGeometry:
    """What a net is fed: an aligned ``chip`` x ``chip`` face, of which it looks at the central
    ``crop`` x ``crop`` (random crops while training)."""

    chip: int
    crop: int


GEOMETRY = {
    # The seed: 256 chips, 227 crops (random while training, central at test time).
    Arch.LEVI_HASSNER: InputGeometry(chip=256, crop=227),
    # The Cydral age model's chip size; the net sees all of it.
    Arch.COMPACT: InputGeometry(chip=64, crop=64),
}


class LeviHassner(nn.Module):  # type: ignore[misc]
    """Levi & Hassner (2015): three convolutions (96 7x7/4, 256 5x5, 384 3x3) with max pooling
    and local response normalisation, two fully connected layers of 512 with dropout 0.5.

    The paper trains one such net per task; here the trunk is shared by a gender and an age head
    so that one pass answers both, which halves its cost at the edge."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=4),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.Conv2d(96, 256, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(384 * 6 * 6, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        self.gender = nn.Linear(512, 2)
        self.age = nn.Linear(512, AGE_BINS)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.features[0].weight, nonlinearity="relu")
        nn.init.kaiming_normal_(self.features[4].weight, nonlinearity="relu")
        nn.init.kaiming_normal_(self.features[8].weight, nonlinearity="relu")

    def forward(self, x: Any) -> tuple[Any, Any]:
        h = self.fc(self.features(x))
        return self.gender(h), self.age(h)


def _conv_bn(cin: int, cout: int, k: int, stride: int) -> Any:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):  # type: ignore[misc]
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, 3, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        return self.act(self.body(x) + self.skip(x))


class CompactNet(nn.Module):  # type: ignore[misc]
    """A small residual net for 64x64 chips: ~0.92 M parameters, ~40 M multiply-adds.

    Plain 3x3 convolutions rather than depthwise ones: on a 2-core CPU they train several times
    faster per multiply-add in PyTorch and run about as fast in cv2.dnn at this size. The stem
    goes straight to 32x32 because full-resolution layers cost the most and help age the least.
    """

    def __init__(self, width: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(3, 32, 5, 2),  # 32x32
            _Residual(32, w, 2),  # 16x16
            _Residual(w, 2 * w, 2),  # 8x8
            _Residual(2 * w, 2 * w, 1),
            _Residual(2 * w, 4 * w, 2),  # 4x4
            _conv_bn(4 * w, 256, 1, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.gender = nn.Linear(256, 2)
        self.age = nn.Linear(256, AGE_BINS)

    def forward(self, x: Any) -> tuple[Any, Any]:
        h = self.features(x)
        return self.gender(h), self.age(h)


def build(arch: Arch) -> Any:
    if arch is Arch.LEVI_HASSNER:
        return LeviHassner()
    return CompactNet()


def parameter_count(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))

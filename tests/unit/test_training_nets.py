"""The nets, the losses and the augmentation (needs the 'train' extra)."""

from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("torch_available")


@pytest.fixture
def torch() -> Any:
    import torch

    return torch


@pytest.mark.parametrize(("arch", "side"), [("compact", 64), ("levi-hassner", 227)])
def test_nets_give_gender_and_81_age_logits(torch: Any, arch: str, side: int) -> None:
    from models.training.nets import GEOMETRY, Arch, build

    net = build(Arch(arch)).eval()
    assert GEOMETRY[Arch(arch)].crop == side
    with torch.inference_mode():
        g, a = net(torch.zeros(2, 3, side, side))
    assert tuple(g.shape) == (2, 2) and tuple(a.shape) == (2, 81)


def test_age_targets_peak_at_the_age_and_sum_to_one(torch: Any) -> None:
    from models.training.train import age_targets

    t = age_targets(torch.tensor([1.0, 30.0, 95.0]))
    assert torch.allclose(t.sum(dim=1), torch.ones(3))
    assert t.argmax(dim=1).tolist() == [1, 30, 80]  # ages past 80 sit in the last bin
    # Older faces get a wider distribution: their age is less certain.
    assert t[1].max() > t[2].max()


def test_loss_is_finite_and_falls_when_right(torch: Any) -> None:
    from models.training.train import TrainConfig, age_targets, multitask_loss

    ages = torch.tensor([5.0, 40.0])
    gender = torch.tensor([0, 1])
    right = multitask_loss(
        torch.tensor([[5.0, -5.0], [-5.0, 5.0]]),
        (age_targets(ages) + 1e-6).log() * 5,
        gender,
        ages,
        TrainConfig(),
    )
    wrong = multitask_loss(
        torch.tensor([[-5.0, 5.0], [5.0, -5.0]]), torch.zeros(2, 81), gender, ages, TrainConfig()
    )
    assert torch.isfinite(right) and right < wrong


def test_augmentation_is_reproducible_and_identity_without_generator(torch: Any) -> None:
    from models.training.augment import AugmentConfig, batch
    from models.training.nets import GEOMETRY, Arch

    rng = np.random.default_rng(0)
    chips = torch.from_numpy(rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8))
    geo = GEOMETRY[Arch.COMPACT]
    a = batch(chips, geo, torch.Generator().manual_seed(7), AugmentConfig())
    b = batch(chips, geo, torch.Generator().manual_seed(7), AugmentConfig())
    assert torch.equal(a, b) and tuple(a.shape) == (4, 3, 64, 64)
    plain = batch(chips, geo)
    assert torch.equal(plain, batch(chips, geo))
    assert not torch.equal(a, plain)


def test_config_fails_fast_with_the_argument_named() -> None:
    from models.training import TrainingError
    from models.training.train import TrainConfig

    with pytest.raises(TrainingError, match=r"balance must be in 0\.\.1, got 2"):
        TrainConfig(balance=2)
    with pytest.raises(TrainingError, match="epochs must be >= 1, got 0"):
        TrainConfig(epochs=0)

"""Export a checkpoint to ONNX that ``cv2.dnn`` loads, and check it against PyTorch.

The exported graph is fed like the Cydral models: an aligned RGB chip in NCHW float32,
``(rgb - [122.782, 117.001, 104.298]) / 256``, of the net's chip size (the Levi-Hassner graph
takes its 256 chip and cuts the central 227 itself). It has two outputs: ``gender`` (softmax
[female, male]) and ``age`` (softmax over 81 bins, 0.25, 1, ..., 80 years).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.training import TRAIN_EXTRA_HINT, TrainingError
from models.training.nets import GEOMETRY, Arch
from models.training.train import load_checkpoint

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(TRAIN_EXTRA_HINT) from exc

F = torch.nn.functional

OPSET = 17
# cv2.dnn and PyTorch both compute in float32 but in different orders; probabilities agree to
# ~1e-6 in practice. The check allows 1e-4 absolute so that a real mismatch (a wrong layer, a
# transposed weight) fails while summation order does not.
TOLERANCE = 1e-4


class _Exported(torch.nn.Module):  # type: ignore[misc]
    def __init__(self, net: Any, arch: Arch) -> None:
        super().__init__()
        self.net = net
        geometry = GEOMETRY[arch]
        self.start = (geometry.chip - geometry.crop) // 2
        self.crop = geometry.crop
        self.full = geometry.chip == geometry.crop

    def forward(self, images: Any) -> tuple[Any, Any]:
        x = images
        if not self.full:
            x = x[:, :, self.start : self.start + self.crop, self.start : self.start + self.crop]
        g, a = self.net(x)
        return F.softmax(g, dim=1), F.softmax(a, dim=1)


@dataclass(frozen=True)
class ExportReport:
    onnx: str
    arch: str
    chip: int
    sha256: str
    size: int
    max_abs_diff: float
    tolerance: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(checkpoint: Path, out: Path, check_faces: int = 16) -> ExportReport:
    """Write the ONNX graph and compare cv2.dnn with PyTorch on ``check_faces`` random chips."""
    net, arch, _ = load_checkpoint(checkpoint)
    net = net.to(memory_format=torch.contiguous_format)
    wrapper = _Exported(net, arch).eval()
    chip = GEOMETRY[arch].chip
    example = torch.zeros(1, 3, chip, chip)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (example,),
        str(out),
        input_names=["images"],
        output_names=["gender", "age"],
        dynamic_axes={"images": {0: "N"}, "gender": {0: "N"}, "age": {0: "N"}},
        opset_version=OPSET,
        dynamo=False,
    )
    diff = parity(wrapper, out, chip, check_faces)
    if diff > TOLERANCE:
        raise TrainingError(
            f"{out}: cv2.dnn differs from PyTorch by {diff:.2e} (> {TOLERANCE:.0e}); not exported"
        )
    data = out.read_bytes()
    report = ExportReport(
        onnx=str(out),
        arch=arch.value,
        chip=chip,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        max_abs_diff=diff,
        tolerance=TOLERANCE,
    )
    out.with_suffix(".export.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def parity(wrapper: Any, onnx_path: Path, chip: int, n: int, seed: int = 0) -> float:
    """Largest absolute difference between PyTorch and cv2.dnn outputs on random inputs."""
    import cv2

    rng = np.random.default_rng(seed)
    # Random pixels in the normalised range of real chips.
    x = ((rng.uniform(0, 255, (n, 3, chip, chip)) - 117.0) / 256).astype(np.float32)
    with torch.inference_mode():
        g_t, a_t = (t.numpy() for t in wrapper(torch.from_numpy(x)))
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setInput(x)
    g_c, a_c = net.forward(["gender", "age"])
    return float(max(np.abs(g_t - g_c).max(), np.abs(a_t - a_c).max()))

"""NanoDet-m (COCO, 416x416) with free input height and width.

The converted NanoDet-m declares a fixed 1x3x416x416 input, so onnxruntime refuses any other
size. Its graph is fully convolutional: the upsampling uses scale factors and the head reshapes
to ``[1, C, -1]``, so only the declared shapes pin it. This rewrites the input's height and width
(and the outputs' cell counts) as named free dimensions; the weights are untouched. A street
frame (16:9) can then be fed at 416x256 instead of being stretched to a square: 40 % fewer
pixels and people keep their proportions.

    python -m models.convert.nanodet_dynamic SRC.onnx models/weights/nanodet-m-coco-dyn.onnx

Needs the ``onnx`` package (in the ``train`` extra); the agent only loads the result.
"""

import argparse
import hashlib
from pathlib import Path


def make_dynamic(src: Path, dst: Path) -> str:
    """Write ``src`` with free input height/width to ``dst``; return its sha256."""
    import onnx  # the train extra only: the agent never converts

    model = onnx.load(str(src))
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        # [1, cells, channels]: the cell count follows the input size.
        output.type.tensor_type.shape.dim[1].dim_param = "cells"
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return hashlib.sha256(dst.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="nanodet-m-416-coco.onnx (see MODELS.md)")
    parser.add_argument("dst", type=Path, help="where to write the dynamic-size model")
    args = parser.parse_args()
    digest = make_dynamic(args.src, args.dst)
    print(f"{args.dst}: {args.dst.stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()

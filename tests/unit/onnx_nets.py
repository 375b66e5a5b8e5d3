"""Tiny ONNX networks for the classifier tests, fed and decoded like the real heads."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


def nhwc_net(path: Path) -> None:
    """A network fed like FaceRes: NHWC in, P(male) = sigmoid(mean of channel 0) and 100 bins
    with all mass on bin 29 (30 years)."""
    bins = np.zeros((1, 100), np.float32)
    bins[0, 29] = 1.0
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Reshape", ["m", "shape"], ["m2"]),
            helper.make_node("Sigmoid", ["m2"], ["gender"]),
            helper.make_node("MatMul", ["m2", "zeros"], ["z"]),
            helper.make_node("Add", ["z", "bins"], ["age"]),
        ],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 3])],
        [
            helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["n", 1]),
            helper.make_tensor_value_info("age", TensorProto.FLOAT, ["n", 100]),
        ],
        [
            helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
            helper.make_tensor("zeros", TensorProto.FLOAT, [1, 100], [0.0] * 100),
            helper.make_tensor("bins", TensorProto.FLOAT, [1, 100], bins.ravel().tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))

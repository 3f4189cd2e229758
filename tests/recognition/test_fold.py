"""models/training/fold.py: the folded graph computes what the original computes, with fewer nodes.

The graphs are built here in the shape Paddle2ONNX writes PP-LCNetV3 blocks (conv, scalar
affine, hard-swish as four nodes, scalar affine, next conv), and run in onnxruntime before and
after folding.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.recognize.models import DEFAULT_MODEL_DIR

_SPEC = importlib.util.spec_from_file_location(
    "fold", Path(__file__).resolve().parents[2] / "models" / "training" / "fold.py"
)
assert _SPEC is not None and _SPEC.loader is not None
fold_module = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fold_module)

RNG = np.random.default_rng(3)


def _const(name: str, value: float) -> onnx.NodeProto:
    array = np.array([value], np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array))


def _block(x: str, out: str, kernel: int, tag: str) -> list[onnx.NodeProto]:
    """Conv -> Mul(a) -> Add(b) -> x*clip(x+3,0,6)/6 -> Mul(a) -> Add(b): one LCNet block."""
    return [
        helper.make_node(
            "Conv", [x, f"{tag}.w", f"{tag}.b"], [f"{tag}.conv"], pads=[kernel // 2] * 4
        ),
        _const(f"{tag}.a1", RNG.uniform(0.5, 1.5)),
        helper.make_node("Mul", [f"{tag}.a1", f"{tag}.conv"], [f"{tag}.m1"]),
        _const(f"{tag}.b1", RNG.uniform(-0.5, 0.5)),
        helper.make_node("Add", [f"{tag}.m1", f"{tag}.b1"], [f"{tag}.z"]),
        _const(f"{tag}.three", 3.0),
        helper.make_node("Add", [f"{tag}.z", f"{tag}.three"], [f"{tag}.z3"]),
        _const(f"{tag}.zero", 0.0),
        _const(f"{tag}.six", 6.0),
        helper.make_node("Clip", [f"{tag}.z3", f"{tag}.zero", f"{tag}.six"], [f"{tag}.clip"]),
        helper.make_node("Mul", [f"{tag}.z", f"{tag}.clip"], [f"{tag}.zc"]),
        _const(f"{tag}.six2", 6.0),
        helper.make_node("Div", [f"{tag}.zc", f"{tag}.six2"], [f"{tag}.hs"]),
        _const(f"{tag}.a2", RNG.uniform(0.5, 1.5)),
        helper.make_node("Mul", [f"{tag}.a2", f"{tag}.hs"], [f"{tag}.m2"]),
        _const(f"{tag}.b2", RNG.uniform(-0.5, 0.5)),
        helper.make_node("Add", [f"{tag}.m2", f"{tag}.b2"], [out]),
    ]


def _model(kernels: tuple[int, ...], *, residual: bool = False) -> onnx.ModelProto:
    channels = 4
    nodes: list[onnx.NodeProto] = []
    initializers = []
    x = "x"
    for i, kernel in enumerate(kernels):
        tag = f"block{i}"
        cin = 3 if i == 0 else channels
        initializers += [
            numpy_helper.from_array(
                RNG.normal(0, 0.5, (channels, cin, kernel, kernel)).astype(np.float32), f"{tag}.w"
            ),
            numpy_helper.from_array(RNG.normal(0, 0.1, channels).astype(np.float32), f"{tag}.b"),
        ]
        nodes += _block(x, f"{tag}.out", kernel, tag)
        x = f"{tag}.out"
    if residual:  # the first block's conv output also feeds the graph's end: not foldable
        nodes.append(helper.make_node("Add", [x, "block0.conv"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes,
        "lcnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _ops(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node if n.op_type != "Constant")


def test_folded_blocks_compute_the_same_with_only_convs_and_hard_swish_left() -> None:
    # 3x3 (padded), 1x1 (unpadded), 3x3: the affine after each hard-swish meets both kinds.
    model = _model((3, 1, 3))
    x = RNG.uniform(-1, 1, (1, 3, 12, 16)).astype(np.float32)
    folded, counts = fold_module.fold(model)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), rtol=1e-5, atol=1e-5)
    assert counts["hard-swish patterns"] == 3
    assert counts["affine steps after a conv"] == 6  # Mul and Add after each conv
    # Before the 1x1 conv both steps fold; before the padded 3x3 the scale folds and the
    # shift stays as one Add (its zero border must stay zero).
    assert counts["affine steps before a conv"] == 3
    assert _ops(folded) == Counter({"Conv": 3, "HardSwish": 3, "Mul": 1, "Add": 2, "Identity": 1})


def test_a_conv_output_used_twice_is_not_folded() -> None:
    model = _model((3,), residual=True)
    x = RNG.uniform(-1, 1, (1, 3, 12, 16)).astype(np.float32)
    folded, counts = fold_module.fold(model)
    np.testing.assert_allclose(_run(folded, x), _run(model, x), rtol=1e-5, atol=1e-5)
    assert counts["affine steps after a conv"] == 0
    assert _ops(folded)["Conv"] == 1


@pytest.mark.parametrize("name", ["plate_det_ppocrv4", "plate_rec_ppocrv4"])
def test_shipped_pretrained_models_are_folded(name: str) -> None:
    """The committed PP-OCRv4 files are the folded ones: no hard-swish is left as four
    nodes and no Conv output goes on to a constant Mul or Add."""
    model = onnx.load(str(DEFAULT_MODEL_DIR / f"{name}.onnx"))
    _, counts = fold_module.fold(model)
    assert sum(counts.values()) == 0, counts
    assert _ops(model)["HardSwish"] > 20

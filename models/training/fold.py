"""Fold a PP-OCR graph's constant affine steps into its convolutions: same function, fewer ops.

Paddle2ONNX writes PP-LCNetV3's learnable affine blocks (``y = a * x + b``, one scalar pair
per block) and its hard-swish (``x * clip(x + 3, 0, 6) / 6``) as separate element-wise nodes.
onnxruntime does not fuse them: on 2 cores they were ~40 % of both networks' time, each a full
pass over the feature map. Here they are folded, exactly up to float rounding:

- ``Conv -> Mul(c) -> Add(c)`` (scalar or per-channel constants, the Conv's only consumer):
  into the Conv's weights and bias;
- ``Mul(a) -> Conv``: ``a`` into the Conv's weights (zero padding stays zero);
  ``Add(b) -> Conv`` only for a Conv without padding, ``b`` into its bias (a padded Conv's
  border would see ``b`` where it saw 0);
- the hard-swish pattern becomes one ``HardSwish`` node (opset 14), which onnxruntime fuses
  into the Conv before it.

Used by ``export_pretrained.py``; needs the ``onnx`` package (train and dev extras), not the
agent at run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

OPSET = 14  # the first with HardSwish


class _Graph:
    """Constants, producers and consumers of one graph, rebuilt after every change."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.constants: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in self.graph.initializer
        }
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.outputs = {o.name for o in self.graph.output}
        self.index()

    def index(self) -> None:
        self.producer = {out: n for n in self.graph.node for out in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def constant_operand(self, node: onnx.NodeProto) -> tuple[np.ndarray, str] | None:
        """(constant, the other input) of a two-input node with one constant input."""
        if len(node.input) != 2:
            return None
        a, b = node.input
        if b in self.constants and a not in self.constants:
            return self.constants[b], a
        if a in self.constants and b not in self.constants:
            return self.constants[a], b
        return None

    def scalar(self, name: str, value: float) -> bool:
        c = self.constants.get(name)
        return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - value) < 1e-6

    def set_constant(self, name: str, value: np.ndarray) -> str:
        self.constants[name] = value
        self.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv_parameters(self, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
        if conv.input[1] not in self.constants:
            return None
        weight = self.constants[conv.input[1]].astype(np.float32)
        if len(conv.input) > 2:
            if conv.input[2] not in self.constants:
                return None
            bias = self.constants[conv.input[2]].astype(np.float32)
        else:
            bias = np.zeros(weight.shape[0], np.float32)
        return weight, bias

    def set_conv(self, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray) -> None:
        stem = conv.name or conv.output[0]
        count = len(self.graph.initializer)
        w = self.set_constant(f"{stem}.folded_w{count}", weight)
        b = self.set_constant(f"{stem}.folded_b{count}", bias)
        del conv.input[1:]
        conv.input.extend([w, b])

    def remove(self, node: onnx.NodeProto) -> None:
        self.graph.node.remove(node)


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts per channel onto (N, C, H, W), as (C,); else None."""
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]), np.float32)
    if value.size == channels and value.shape in ((channels, 1, 1), (1, channels, 1, 1)):
        return value.reshape(channels).astype(np.float32)
    return None


def _hard_swish(g: _Graph) -> int:
    """``x * clip(x + 3, 0, 6) / 6`` -> ``HardSwish(x)``."""
    count = 0
    for clip in [n for n in g.graph.node if n.op_type == "Clip"]:
        add = g.producer.get(clip.input[0])
        if add is None or add.op_type != "Add" or not g.scalar(add.input[1], 3.0):
            continue
        if len(clip.input) != 3 or not g.scalar(clip.input[1], 0.0):
            continue
        if not g.scalar(clip.input[2], 6.0):
            continue
        x = add.input[0]
        mul = g.only_consumer(clip.output[0])
        if mul is None or mul.op_type != "Mul" or set(mul.input) != {x, clip.output[0]}:
            continue
        div = g.only_consumer(mul.output[0])
        if div is None or div.op_type != "Div" or not g.scalar(div.input[1], 6.0):
            continue
        if g.only_consumer(add.output[0]) is None:
            continue
        position = list(g.graph.node).index(add)
        g.graph.node.insert(
            position,
            helper.make_node("HardSwish", [x], [div.output[0]], name=f"{div.output[0]}.hard_swish"),
        )
        for node in (add, clip, mul, div):
            g.remove(node)
        g.index()
        count += 1
    return count


def _until_stable(g: _Graph, rule: Callable[[_Graph, onnx.NodeProto], bool]) -> int:
    """Apply ``rule`` to every Conv until it changes none; how many times it changed one."""
    count = 0
    changed = True
    while changed:
        changed = False
        for conv in [n for n in g.graph.node if n.op_type == "Conv"]:
            if rule(g, conv):
                g.index()
                count += 1
                changed = True
    return count


def _scalar_value(value: np.ndarray) -> float | None:
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _fold_step_after(g: _Graph, conv: onnx.NodeProto) -> bool:
    """``Conv -> Mul(c)`` or ``Conv -> Add(c)`` -> Conv with scaled weights / shifted bias."""
    user = g.only_consumer(conv.output[0])
    if user is None or user.op_type not in ("Mul", "Add"):
        return False
    operand = g.constant_operand(user)
    parameters = g.conv_parameters(conv)
    if operand is None or parameters is None:
        return False
    weight, bias = parameters
    value = _per_channel(operand[0], weight.shape[0])
    if value is None:
        return False
    if user.op_type == "Mul":
        weight = weight * value.reshape(-1, *([1] * (weight.ndim - 1)))
        bias = bias * value
    else:
        bias = bias + value
    g.set_conv(conv, weight, bias)
    conv.output[0] = user.output[0]
    g.remove(user)
    return True


def _unpadded(conv: onnx.NodeProto) -> bool:
    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    return not any(attributes.get("pads", [])) and auto_pad in (b"NOTSET", b"VALID")


def _fold_step_before(g: _Graph, conv: onnx.NodeProto) -> bool:
    """``Mul(a) -> Conv`` (scalar a) and ``Add(b) -> Conv`` (scalar b) folded: b into the
    bias of a Conv without padding, else only the scale before the Add (``_scale_past_shift``)."""
    step = g.producer.get(conv.input[0])
    if step is None or step.op_type not in ("Mul", "Add"):
        return False
    if g.only_consumer(step.output[0]) is not conv:
        return False
    operand = g.constant_operand(step)
    parameters = g.conv_parameters(conv)
    value = _scalar_value(operand[0]) if operand is not None else None
    if operand is None or parameters is None or value is None:
        return False
    weight, bias = parameters
    if step.op_type == "Add" and not _unpadded(conv):
        return _scale_past_shift(g, conv, step, value, operand[1])
    if step.op_type == "Mul":
        weight = weight * value
    else:
        bias = bias + value * weight.reshape(weight.shape[0], -1).sum(axis=1)
    g.set_conv(conv, weight, bias)
    conv.input[0] = operand[1]
    g.remove(step)
    return True


def _scale_past_shift(
    g: _Graph, conv: onnx.NodeProto, shift: onnx.NodeProto, b: float, shifted: str
) -> bool:
    """``Mul(a) -> Add(b) -> padded Conv``: a * x + b = a * (x + b / a), so the scale goes
    into the Conv's weights and the Add stays, on x, keeping the Conv's zero border zero."""
    scale = g.producer.get(shifted)
    if scale is None or scale.op_type != "Mul" or g.only_consumer(scale.output[0]) is not shift:
        return False
    operand = g.constant_operand(scale)
    a = _scalar_value(operand[0]) if operand is not None else None
    parameters = g.conv_parameters(conv)
    if operand is None or a is None or a == 0.0 or parameters is None:
        return False
    weight, bias = parameters
    g.set_conv(conv, weight * a, bias)
    constant = g.set_constant(
        f"{shift.name}.shift{len(g.graph.initializer)}", np.array([b / a], np.float32)
    )
    del shift.input[:]
    shift.input.extend([operand[1], constant])
    g.remove(scale)
    return True


def _drop_unused(g: _Graph) -> None:
    used = {name for node in g.graph.node for name in node.input} | g.outputs
    for initializer in list(g.graph.initializer):
        if initializer.name not in used:
            g.graph.initializer.remove(initializer)
    for node in list(g.graph.node):
        if node.op_type == "Constant" and node.output[0] not in used:
            g.remove(node)


def fold(model: onnx.ModelProto) -> tuple[onnx.ModelProto, Counter[str]]:
    """The folded model (opset 14) and how many nodes each step removed."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
    else:
        model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    counts: Counter[str] = Counter()
    counts["hard-swish patterns"] = _hard_swish(g)
    counts["affine steps after a conv"] = _until_stable(g, _fold_step_after)
    counts["affine steps before a conv"] = _until_stable(g, _fold_step_before)
    _drop_unused(g)
    onnx.checker.check_model(model)
    return model, counts

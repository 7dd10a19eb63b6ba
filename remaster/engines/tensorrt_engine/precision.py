"""Which nodes of an exported float32 graph compute in fp16 (or bf16) and which stay float32, and
that graph rewritten with those types: the strongly typed network the TensorRT builder parses.

TensorRT 11 builds strongly typed networks only (its FP16 builder flag and per-layer precision
constraints are gone): every tensor's type is the graph's. So the graph the builder gets must
carry the types itself, as the torch engine's network does at fp16: each weighted layer in the
precision its weights have after `set_precision` (remaster's float32 layers: each network's
FLOAT32_LAYERS / `_keeps_float32`, found as the parameters `set_precision` leaves in float32),
casts where a tensor passes between the two. Rewriting the cached float32 ONNX file, rather than
exporting a second, fp16 network, keeps one file for OpenVINO and TensorRT, keyed and verified once.

The plan, in graph order (ONNX nodes are topologically sorted):
- a node that reads a parameter computes in that parameter's precision (float32 where the
  network keeps it float32, else the low precision);
- the global means (ReduceMean: the SE blocks' `.float().mean()`) and explicit casts to float
  stay float32, as in the torch network;
- any other node with float tensors computes in the low precision where one of its float inputs
  comes from a low-precision node, else in float32 (graph inputs and constants are float32).
  So the SE gates (two 1x1 convolutions of float32 weights on a float32 mean) stay float32 and
  the map they scale stays low, as `_apply_gate` does; the output layers' sums with float32
  residuals (UpCunet's `+ crop(unet1_out)`, Compact's nearest 4x) stay float32.
Graph inputs and outputs stay float32: the frame in, the frame out, and the states and gates that
tiles keep between SE stages, so every stage graph is called alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from remaster.engines.graph.cache import parameter_of

LOW_TYPES = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "fp32": TensorProto.FLOAT}
# Reductions over a whole map: the SE blocks' means, summed in float32 by the torch network too.
FLOAT32_OPS = frozenset({"ReduceMean", "ReduceSum", "GlobalAveragePool"})


@dataclass(frozen=True)
class PrecisionPlan:
    low: str  # "fp16", "bf16" or "fp32" (nothing to rewrite)
    float32_nodes: tuple[str, ...]  # node names, graph order
    low_nodes: tuple[str, ...]


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """The names of every float32 tensor of the graph (shape inference for the intermediate ones)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    typed = [*g.input, *g.output, *g.value_info]
    found = {v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    found |= {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}
    return found


def plan_precision(
    model: onnx.ModelProto, parameters: Iterable[str], float32_parameters: Iterable[str], low: str
) -> PrecisionPlan:
    """The plan for `model` (a float32 export) at `low`; `parameters`: the network's parameter names,
    `float32_parameters` those it keeps in float32 (engines/graph/export.float32_weights)."""
    if low not in LOW_TYPES:
        raise ValueError(f"precision {low!r}: want one of {', '.join(LOW_TYPES)}")
    floats = _float_tensors(model)
    parameters = list(parameters)
    kept = set(float32_parameters)
    initializers = {t.name for t in model.graph.initializer}
    low_tensors: set[str] = set()
    float32_nodes, low_nodes = [], []
    for node in model.graph.node:
        float_inputs = [name for name in node.input if name in floats]
        if not float_inputs and not any(name in floats for name in node.output):
            continue  # shape arithmetic
        weights = [parameter_of(name, parameters) for name in float_inputs if name in initializers]
        weights = [w for w in weights if w is not None]
        if low == "fp32" or node.op_type in FLOAT32_OPS or node.op_type == "Cast":
            is_low = False
        elif weights:
            is_low = not any(w in kept for w in weights)
        else:
            is_low = any(name in low_tensors for name in float_inputs)
        (low_nodes if is_low else float32_nodes).append(node.name)
        if is_low:
            low_tensors.update(name for name in node.output if name in floats)
    return PrecisionPlan(low, tuple(float32_nodes), tuple(low_nodes))


def _follows_data(node: onnx.NodeProto, index: int, opset: int) -> bool:
    """Whether input `index` of `node` has the type of its output (Conv's weight: yes; Resize's
    scales, always float32: no), read from the operator's schema."""
    schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    formal = schema.inputs[min(index, len(schema.inputs) - 1)]
    return bool(schema.outputs) and formal.type_str == schema.outputs[0].type_str


def _cast(tensor: str, to: int, suffix: str) -> onnx.NodeProto:
    return helper.make_node("Cast", [tensor], [f"{tensor}__{suffix}"], name=f"cast_{tensor}__{suffix}", to=to)


def _lowered(initializer: TensorProto, to: int) -> TensorProto:
    array = numpy_helper.to_array(initializer)
    if to == TensorProto.BFLOAT16:
        import ml_dtypes  # onnx's own dependency, for bfloat16 arrays

        return numpy_helper.from_array(array.astype(ml_dtypes.bfloat16), initializer.name)
    return numpy_helper.from_array(array.astype(np.float16), initializer.name)


def typed_graph(model: onnx.ModelProto, plan: PrecisionPlan) -> onnx.ModelProto:
    """`model` with the plan's low nodes computing in its low type: their float weights stored in it,
    a Cast wherever a tensor crosses between float32 and low nodes, graph inputs and outputs float32."""
    if plan.low == "fp32":
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    low_type = LOW_TYPES[plan.low]
    lows = set(plan.low_nodes)
    opset = next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
    floats = _float_tensors(model)
    initializers = {t.name: t for t in g.initializer}
    made_low = {name for node in g.node if node.name in lows for name in node.output if name in floats}
    # Which kinds of node (low: True, float32: False) read each float weight as data.
    readers: dict[str, set[bool]] = {}
    for node in g.node:
        for index, name in enumerate(node.input):
            if name in floats and name in initializers and _follows_data(node, index, opset):
                readers.setdefault(name, set()).add(node.name in lows)
    # Weights read by low nodes only are stored in the low type (half the bytes), the rest cast.
    stored_low = {name for name, kinds in readers.items() if name in initializers and kinds == {True}}
    for index, tensor in enumerate(g.initializer):
        if tensor.name in stored_low:
            g.initializer[index].CopyFrom(_lowered(tensor, low_type))
    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, bool], str] = {}
    for node in g.node:
        for index, name in enumerate(node.input):
            if name not in floats or name in stored_low or not _follows_data(node, index, opset):
                continue
            wanted_low = node.name in lows
            if wanted_low == (name in made_low):
                continue
            key = (name, wanted_low)
            if key not in casts and name in initializers:
                # A weight that float32 nodes read too: a low copy, not a Cast (a builder wants a
                # convolution's weights constant).
                copy = _lowered(initializers[name], low_type)
                copy.name = f"{name}__{plan.low}"
                g.initializer.append(copy)
                casts[key] = copy.name
            elif key not in casts:
                cast = _cast(name, low_type if wanted_low else TensorProto.FLOAT, plan.low if wanted_low else "fp32")
                nodes.append(cast)
                casts[key] = cast.output[0]
            node.input[index] = casts[key]
        nodes.append(node)
    # Float32 outputs: the last low node writes a renamed tensor, cast back to the output's name.
    for output in g.output:
        if output.name in made_low:
            renamed = f"{output.name}__{plan.low}"
            for node in nodes:
                node.output[:] = [renamed if n == output.name else n for n in node.output]
                node.input[:] = [renamed if n == output.name else n for n in node.input]
            nodes.append(helper.make_node("Cast", [renamed], [output.name], name=f"cast_{output.name}", to=1))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # the float32 export's intermediate types: no longer true
    return out


def node_types(model: onnx.ModelProto) -> dict[str, int]:
    """Each node's first output's element type in `model`, by shape inference (strict: a type
    mismatch anywhere, which a strongly typed builder refuses, raises here)."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    return {node.name: types.get(node.output[0], 0) for node in inferred.graph.node}

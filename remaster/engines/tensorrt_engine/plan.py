"""What a TensorRT engine is built and called with, as values made from the ONNX graph alone: the
engine cache's key, the I/O bindings and the builder's settings. Nothing here needs TensorRT or
CUDA, so that the tests build every plan on the CPU from real exported graphs; engines/tensorrt_engine/runtime.py
hands them to TensorRT.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

import onnx
from onnx import TensorProto

from remaster.architectures.realcugan.export import GATE, INPUT_PREFIX

# ONNX element types -> the torch dtype names the engine allocates (torch.float32, ...).
DTYPE_NAMES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}
# The builder's share of the GPU memory free when it starts: the tile plans' share (engines/device.py
# MEMORY_SHARE), so that a build beside a running job leaves it the same room.
WORKSPACE_SHARE = 0.5
# TensorRT's own default level (IBuilderConfig.builder_optimization_level): level 5 tries more
# tactics for minutes per graph, and with the SE stage cut a tiled model has up to 20 graphs.
OPTIMIZATION_LEVEL = 3


class Role(StrEnum):
    FRAME = "frame"  # the padded frame or window in, the network's output out
    STATE = "state"  # a tile's state between SE stages, in or out
    GATE = "gate"  # the whole frame's SE gate, in


@dataclass(frozen=True)
class Binding:
    name: str
    shape: tuple[int, ...]
    dtype: str  # a torch dtype's name: "float32", "float16", "bfloat16"
    role: Role

    @property
    def elements(self) -> int:
        count = 1
        for side in self.shape:
            count *= side
        return count


@dataclass(frozen=True)
class BindingPlan:
    """The graph's inputs and outputs in the graph's order; the outputs are what the engine allocates
    for each call (fresh tensors: the caller keeps them, as states between stages or as the frame)."""

    inputs: tuple[Binding, ...]
    outputs: tuple[Binding, ...]

    def mismatch(self, engine_tensors: list[tuple[str, bool, tuple[int, ...], str]]) -> str | None:
        """Why an engine's I/O tensors (name, is input, shape, dtype) are not this plan's; None if they are."""
        want = sorted((b.name, True, b.shape, b.dtype) for b in self.inputs)
        want += sorted((b.name, False, b.shape, b.dtype) for b in self.outputs)
        have = sorted(t for t in engine_tensors if t[1]) + sorted(t for t in engine_tensors if not t[1])
        if want == have:
            return None
        return f"its tensors {have} are not the graph's {want}"


def _role(name: str, is_input: bool) -> Role:
    if name == INPUT_PREFIX + GATE:
        return Role.GATE
    if name.startswith(INPUT_PREFIX) or (not is_input and name not in ("out", "y")):
        return Role.STATE
    return Role.FRAME


def _bindings(values, is_input: bool) -> tuple[Binding, ...]:
    found = []
    for value in values:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        if any(side <= 0 for side in dims):
            raise ValueError(f"{value.name}: the engine builds fixed shapes only, got {dims}")
        if tensor.elem_type not in DTYPE_NAMES:
            raise ValueError(f"{value.name}: element type {TensorProto.DataType.Name(tensor.elem_type)}")
        found.append(Binding(value.name, dims, DTYPE_NAMES[tensor.elem_type], _role(value.name, is_input)))
    return tuple(found)


def binding_plan(model: onnx.ModelProto) -> BindingPlan:
    """The I/O of an exported (or typed) graph: every shape fixed, every type a float."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    return BindingPlan(_bindings(inputs, True), _bindings(model.graph.output, False))


@dataclass(frozen=True)
class BuildPlan:
    """The builder's settings. Shapes are fixed (one engine per size and batch), so no optimisation
    profile: TensorRT needs one only for dynamic inputs. TF32 off: remaster's float32 layers are float32
    to keep the picture's precision (10-bit TF32 mantissas would undo that), and an fp32 engine is true fp32."""

    workspace_bytes: int
    optimization_level: int = OPTIMIZATION_LEVEL
    tf32: bool = False


def build_plan(free_bytes: int) -> BuildPlan:
    """The settings for a build on a GPU with `free_bytes` free now (a pure function: tests give any GPU)."""
    return BuildPlan(workspace_bytes=max(1 << 28, int(free_bytes * WORKSPACE_SHARE)))


@dataclass(frozen=True)
class GpuIdentity:
    name: str  # torch.cuda.get_device_name: "NVIDIA H100 80GB HBM3"
    capability: tuple[int, int]  # compute capability: (9, 0)


@dataclass(frozen=True)
class EngineKey:
    """What a serialized engine depends on: TensorRT engines run only on the GPU model and TensorRT
    version they were built for (a mismatch fails to deserialize), and are built for one graph at
    one precision, size and batch. `typed_graph` is the sha256 of the strongly typed ONNX bytes the
    builder parses, so the float32 graph (weights, part, shapes, exporter) and the precision plan are
    both in it; `graph` names the float32 cache entry it came from."""

    graph: str  # the float32 graph's GraphKey digest
    typed_graph: str
    precision: str
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # the size and the batch, for a reader of the record
    gpu: str
    compute_capability: str  # "9.0"
    tensorrt: str
    optimization_level: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


def engine_key(
    graph: str, typed_bytes: bytes, precision: str, plan: BindingPlan, gpu: GpuIdentity, tensorrt: str, build: BuildPlan
) -> EngineKey:
    major, minor = gpu.capability
    return EngineKey(
        graph=graph,
        typed_graph=hashlib.sha256(typed_bytes).hexdigest(),
        precision=precision,
        inputs=tuple((b.name, b.shape) for b in plan.inputs),
        gpu=gpu.name,
        compute_capability=f"{major}.{minor}",
        tensorrt=tensorrt,
        optimization_level=build.optimization_level,
    )

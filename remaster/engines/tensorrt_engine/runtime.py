"""TensorRT itself: the import, the build of a serialized engine from a typed ONNX graph, and the run
of one on torch's current CUDA stream with torch tensors in and out. Only a GPU runs this module;
everything it is handed (engines/tensorrt_engine/plan.py, precision.py) is made and tested on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from remaster.core.errors import UsageError

if TYPE_CHECKING:  # plan.py reads ONNX graphs: onnx, which comes with the extra
    from remaster.engines.tensorrt_engine.plan import BindingPlan, BuildPlan

EXTRA = "pip install 'remaster[tensorrt]'"


class TensorRtMissing(UsageError):
    pass


class TensorRtFailed(UsageError):
    """TensorRT could not build or load an engine: exit 2 where the user asked for it; `--engine
    auto` runs the torch engine instead."""


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise TensorRtMissing(f"the tensorrt engine needs TensorRT ({EXTRA})") from None
    return tensorrt


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except TensorRtMissing:
        return False
    return True


def tensorrt_version() -> str:
    """The version of the TensorRT that builds and loads the engines (a key of the engine cache)."""
    return str(import_tensorrt().__version__)


def tensorrt_summary() -> str:
    """One line for `remaster bench`: TensorRT's version and where it runs, or the extra to install."""
    if not tensorrt_available():
        return f"none ({EXTRA})"
    where = "--engine tensorrt --device cuda[:N]" if torch.cuda.is_available() else "no CUDA GPU here"
    return f"{tensorrt_version()} ({where})"


_LOGGER: Any = None


def logger() -> Any:
    """One TensorRT logger for the process (warnings and errors only: its info lines are many)."""
    global _LOGGER
    if _LOGGER is None:
        trt = import_tensorrt()
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def build_engine(typed_onnx: bytes, plan: BuildPlan) -> bytes:
    """The serialized engine for a typed ONNX graph (strongly typed: the graph's types are the engine's)."""
    trt = import_tensorrt()
    try:
        builder = trt.Builder(logger())
        # TensorRT 10 builds a strongly typed network where asked; 11 always does and ignores the flag.
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
        parser = trt.OnnxParser(network, logger())
        if not parser.parse(typed_onnx):
            first = parser.get_error(0) if parser.num_errors else "no detail"
            raise TensorRtFailed(f"TensorRT cannot parse the graph: {first}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
        config.builder_optimization_level = plan.optimization_level
        if not plan.tf32 and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        serialized = builder.build_serialized_network(network, config)
    except TensorRtFailed:
        raise
    except Exception as exc:  # the bindings raise many kinds; each one means: no engine
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TensorRtFailed(f"TensorRT could not build the engine: {first}") from exc
    if serialized is None:
        raise TensorRtFailed("TensorRT could not build the engine (its log above says why)")
    return bytes(serialized)


class TensorRtGraph:
    """One deserialized engine and its execution context, called with torch CUDA tensors."""

    def __init__(self, serialized: bytes, plan: BindingPlan, device: torch.device):
        trt = import_tensorrt()
        self.trt = trt
        self.plan = plan
        self.device = device
        with torch.cuda.device(device):
            self.engine = trt.Runtime(logger()).deserialize_cuda_engine(serialized)
            if self.engine is None:
                raise TensorRtFailed("TensorRT cannot load the cached engine")
            self.context = self.engine.create_execution_context()
        wrong = plan.mismatch(self.io_tensors())
        if wrong is not None:
            raise TensorRtFailed(f"the cached engine does not fit its graph: {wrong}")

    def io_tensors(self) -> list[tuple[str, bool, tuple[int, ...], str]]:
        found = []
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            is_input = self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            dtype = self.engine.get_tensor_dtype(name)
            names = {self.trt.float32: "float32", self.trt.float16: "float16", self.trt.bfloat16: "bfloat16"}
            found.append((name, is_input, tuple(self.engine.get_tensor_shape(name)), names.get(dtype, str(dtype))))
        return found

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The engine on `inputs` (CUDA tensors of the plan's shapes), on torch's current stream: the
        outputs are fresh tensors, ready in stream order like any torch result. Every tensor here is
        made on that stream, so the caching allocator reuses none of them before the engine is done."""
        converted = {}
        for binding in self.plan.inputs:
            tensor = inputs[binding.name].to(self.device, _DTYPES[binding.dtype]).contiguous()
            converted[binding.name] = tensor
            self.context.set_tensor_address(binding.name, tensor.data_ptr())
        outputs = {}
        for binding in self.plan.outputs:
            tensor = torch.empty(binding.shape, dtype=_DTYPES[binding.dtype], device=self.device)
            outputs[binding.name] = tensor
            self.context.set_tensor_address(binding.name, tensor.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise TensorRtFailed("TensorRT could not run the engine")
        return outputs


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

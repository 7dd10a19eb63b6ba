"""OpenVINO as a runtime for exported graphs: the device names, the precision, compiling, requests.

`--device cpu` is OpenVINO's CPU plugin; `--device xpu[:N]` (PyTorch's name for Intel GPUs) is its
GPU plugin's device N (`GPU.N`, or `GPU` where there is one). Precision is OpenVINO's inference
precision hint on a graph exported in float32: f32, bf16 (a CPU with AVX-512 BF16 or AMX) or f16
(Intel GPUs, and CPUs with AVX-512 FP16). The layers that remaster keeps in float32 at any
precision (each network's FLOAT32_LAYERS / `_keeps_float32`) are marked so that OpenVINO's
precision conversion leaves them alone, where its plugin honours the mark (`keep_float32`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from remaster.core.errors import UsageError
from remaster.core.outputs import writable_folder
from remaster.core.precision import Precision
from remaster.core.resources import cache_dir
from remaster.engines.graph.cache import parameter_of

EXTRA = "pip install 'remaster[openvino]'"
# OpenVINO's names for the precisions remaster has (ov::hint::inference_precision).
INFERENCE_PRECISION = {Precision.FP32: "f32", Precision.BF16: "bf16", Precision.FP16: "f16"}
# Two requests: one computes while the other's output is being finished and the next input made.
REQUESTS = 2
# rt_info key that OpenVINO's ConvertPrecision pass reads to leave a node in float32
# (ov::disable_fp16_compression, transformations/rt_info/disable_fp16_compression.hpp).
KEEP_FP32 = "disable_fp16_compression_0"


class OpenVinoMissing(UsageError):
    pass


def import_openvino() -> Any:
    # `import openvino` imports its model converter (openvino/tools/ovc/__init__.py), which sends a
    # usage event to Google Analytics through openvino_telemetry, from a process it forks: network
    # traffic nobody asked for, and a fork of a process with threads. The forked child hung on a
    # lock held by one of the parent's threads, and multiprocessing's exit handler waited for it
    # for good: the README's demo never exited. With that package not importable, ovc takes its
    # own stub (telemetry_utils.py), which sends nothing.
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino
    except ImportError:
        raise OpenVinoMissing(f"the openvino engine needs OpenVINO ({EXTRA})") from None
    return openvino


def openvino_available() -> bool:
    try:
        import_openvino()
    except OpenVinoMissing:
        return False
    return True


_CORE: Any = None


def core() -> Any:
    """One OpenVINO Core for the process: it holds the plugins, which load once."""
    global _CORE
    if _CORE is None:
        _CORE = import_openvino().Core()
    return _CORE


def openvino_device(name: str) -> str:
    """`--device` as OpenVINO names it: cpu/auto -> CPU, xpu[:N] -> GPU.N; one line where it is not there."""
    if name in ("auto", "cpu"):
        return "CPU"
    match = re.fullmatch(r"xpu(?::(\d+))?", name)
    if match is None:
        raise UsageError(f"device {name}: the openvino engine runs on cpu or xpu[:N] (Intel GPUs)")
    index = int(match.group(1) or 0)
    gpus = sorted(d for d in core().available_devices if d.startswith("GPU"))
    if index >= len(gpus):
        raise UsageError(f"device {name}: OpenVINO sees {len(gpus)} Intel GPU(s) ({', '.join(gpus) or 'none'})")
    return gpus[index]


def device_list() -> list[str]:
    """Every device OpenVINO runs here, as `--device` names it, with OpenVINO's own name for it."""
    if not openvino_available():
        return []
    found = []
    gpus = sorted(d for d in core().available_devices if d.startswith("GPU"))
    for device in sorted(core().available_devices):
        if device != "CPU" and not device.startswith("GPU"):
            continue
        flag = "cpu" if device == "CPU" else f"xpu:{gpus.index(device)}"
        found.append(f"{flag} ({device}: {core().get_property(device, 'FULL_DEVICE_NAME')})")
    return found


def supported_precisions(device: str) -> tuple[Precision, ...]:
    """The precisions OpenVINO computes natively on `device` (its OPTIMIZATION_CAPABILITIES)."""
    capabilities = set(core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    found = [Precision.FP32]
    if "BF16" in capabilities:
        found.append(Precision.BF16)
    if "FP16" in capabilities:
        found.append(Precision.FP16)
    return tuple(found)


def keep_float32(model: Any, weight_names: Iterable[str]) -> int:
    """Mark the operations that read the weights `weight_names` (ONNX initializers keep the torch
    parameter names, under a wrapper's prefix: `parameter_of`) and the bias additions after them to
    stay float32; returns how many were marked."""
    wanted = list(weight_names)
    marked = 0
    for op in model.get_ordered_ops():
        sources = {inp.get_source_output().get_node().get_friendly_name() for inp in op.inputs()}
        if any(parameter_of(source, wanted) for source in sources):
            op.get_rt_info()[KEEP_FP32] = ""
            marked += 1
            for target in op.output(0).get_target_inputs():
                consumer = target.get_node()
                if consumer.get_type_name() == "Add":
                    consumer.get_rt_info()[KEEP_FP32] = ""
                    marked += 1
    return marked


def compiled_cache_dir() -> Path | None:
    """Where OpenVINO keeps the graphs it compiled (its CACHE_DIR): the user cache's `openvino`
    folder, or None where it cannot be written (then each run compiles again)."""
    return writable_folder(cache_dir() / "openvino")


@dataclass(frozen=True)
class CompileTarget:
    device: str  # OpenVINO's device name: CPU, GPU.0
    precision: Precision  # fp32, bf16 or fp16: OpenVINO's inference precision

    @property
    def config(self) -> dict[str, str]:
        # LATENCY: one request uses every core (a frame at a time, as the torch engine runs on a CPU).
        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        # OpenVINO keeps what it compiled, keyed by the graph, the device and this config, and
        # imports it next time: 0.2 s instead of 0.6 s for a Real-CUGAN 2x frame graph on two
        # cores. A blob it cannot import (damaged, another version's) it compiles again.
        folder = compiled_cache_dir()
        if folder is not None:
            config["CACHE_DIR"] = str(folder)
        return config


class CompiledGraph:
    """One graph compiled for one target, with REQUESTS infer requests used in turn; arrays in
    and out (float32, C order)."""

    def __init__(self, onnx_path: Path, target: CompileTarget, float32_weights: Iterable[str] = ()):
        float32_weights = list(float32_weights)
        if target.precision != Precision.FP32 and float32_weights:
            model = core().read_model(str(onnx_path))
            keep_float32(model, float32_weights)
        else:
            # Compiled from the file: OpenVINO's cache then keys it by the file, not by hashing the
            # whole graph in memory (the marks above need the graph in memory).
            model = str(onnx_path)
        self.compiled = core().compile_model(model, target.device, target.config)
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.requests = [self.compiled.create_infer_request() for _ in range(REQUESTS)]
        self.turn = 0

    def start(self, inputs: dict[str, Any]) -> Any:
        """Start one inference on the next request; `finish` it for the outputs. `inputs`: arrays,
        or CPU tensors (read through their array interface)."""
        request = self.requests[self.turn]
        self.turn = (self.turn + 1) % len(self.requests)
        arrays = [np.ascontiguousarray(inputs[name], dtype=np.float32) for name in self.input_names]
        request.start_async(arrays, share_inputs=False)
        return request

    def finish(self, request: Any) -> dict[str, np.ndarray]:
        request.wait()
        # Copied: the request's output memory is reused by its next inference.
        return {name: np.array(request.get_tensor(name).data) for name in self.output_names}

    def run(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.finish(self.start(inputs))

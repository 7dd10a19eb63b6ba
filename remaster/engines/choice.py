"""Which engine runs a model: `make_upscaler`, the one factory image, video, queue, compare and bench use.

- CUDA: `--engine tensorrt` or `torch` as asked; `auto` takes tensorrt where it is installed (and
  the torch engine if an engine cannot be built), else torch. Vulkan: ncnn (the only engine there).
- CPU: `--engine torch`, `ncnn` or `openvino` as asked; `auto` takes whichever engine and precision
  ran the model fastest on this CPU, measured once on a small frame and remembered in a cache file.
  Each engine is measured at the precision asked for; where that is `auto` and gives the model bf16,
  at fp32 too, since bf16 is the faster on some CPUs with AVX-512 BF16 and the slower on others
  (docs/engine.md). ncnn's CPU path runs fp32 only; ncnn only for a model with ncnn files, openvino
  only where it is installed.
- Intel GPUs: `--engine openvino --device xpu[:N]`.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import remaster
from remaster.architectures.descriptor import LoadedModel
from remaster.core.errors import UsageError
from remaster.core.machine import cpu_name, cpu_threads, installed_version
from remaster.core.outputs import read_json_cache, write_json_cache
from remaster.core.precision import Precision
from remaster.core.resources import cache_dir
from remaster.engines.base import Upscaler
from remaster.engines.device import precision_name, resolve_device, resolve_precision
from remaster.engines.graph.export import GraphExportError
from remaster.engines.kinds import ENGINE_ENV, Engine, parse_engine
from remaster.engines.ncnn_engine.upscaler import NcnnUpscaler, ncnn_files
from remaster.engines.openvino_engine.runtime import import_openvino, openvino_available
from remaster.engines.settings import EngineSettings
from remaster.engines.tensorrt_engine.runtime import import_tensorrt, tensorrt_available
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.engines.vulkan import VULKAN, import_ncnn
from remaster.media.testcard import anime_frame

CACHE_NAME = "engines.json"
# The measured frame's side: big enough that the network, not the call overhead, takes the time,
# small enough that the first run of a model waits seconds, not minutes. Measured on two shared
# cores at 128 px: Real-CUGAN 2x 0.5-1.8 s a run, RRDBNet 4x 7-9 s (six runs in all); at 64 px,
# a quarter of that.
PROBE_SIDE = 64
# Timed runs of each engine, alternating, after one warm-up each; the fastest counts (the least
# disturbed by whatever else the machine does).
PROBE_ROUNDS = 2


def cache_path() -> Path:
    """$REMASTER_HOME/cache/engines.json, else $XDG_CACHE_HOME/remaster/engines.json (~/.cache/...)."""
    return cache_dir() / CACHE_NAME


def cache_key(loaded: LoadedModel, threads: int, precision: str = Precision.AUTO) -> str:
    """What a measurement depends on: the model, the precision asked for, the CPU, the threads and
    every version involved."""
    ncnn = import_ncnn()
    ncnn_version = getattr(ncnn, "__version__", "?") if ncnn else "none"
    d = loaded.descriptor
    return (
        f"{d.name} | {d.source} | precision {precision} | {cpu_name()} | {threads} threads"
        f" | torch {torch.__version__} | ncnn {ncnn_version} | openvino {installed_version('openvino')}"
        f" | remaster {remaster.__version__}"
    )


@dataclass(frozen=True)
class CpuChoice:
    """An engine and the precision to run it at: the one asked for, or fp32 where `auto` gave bf16
    and fp32 measured faster."""

    engine: Engine
    precision: str

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


def _seconds(upscaler: Upscaler, frame: np.ndarray) -> float:
    start = time.perf_counter()
    upscaler.upscale(frame)
    return time.perf_counter() - start


def cpu_candidates(loaded: LoadedModel, settings: EngineSettings) -> list[CpuChoice]:
    """The engines and precisions `auto` measures for this model on this CPU."""
    precisions = [precision_name(_cpu_dtype(loaded, settings.precision))]
    if settings.precision == Precision.AUTO and precisions[0] != Precision.FP32:
        precisions.append(Precision.FP32)
    engines = [Engine.OPENVINO] if openvino_available() else []
    engines.append(Engine.TORCH)
    found = [CpuChoice(engine, precision) for precision in precisions for engine in engines]
    ncnn_files_here = import_ncnn() is not None and ncnn_files(loaded.descriptor) is not None
    if ncnn_files_here and Precision.FP32 in precisions:
        found.append(CpuChoice(Engine.NCNN, Precision.FP32))
    return found


def _cpu_dtype(loaded: LoadedModel, precision: str) -> torch.dtype:
    d = loaded.descriptor
    return resolve_precision(precision, torch.device("cpu"), d.auto_cpu_bf16, d.precisions)


def _upscaler(loaded: LoadedModel, settings: EngineSettings, choice: CpuChoice) -> Upscaler:
    settings = replace(settings, engine=choice.engine, precision=choice.precision)
    if choice.engine == Engine.TORCH:
        # A copy each: the torch engine sets its network to its precision in place, and two
        # candidates at two precisions would otherwise share one network.
        return TorchUpscaler(replace(loaded, module=copy.deepcopy(loaded.module)), settings)
    if choice.engine == Engine.OPENVINO:
        from remaster.engines.openvino_engine.upscaler import OpenVinoUpscaler  # imports onnx: only when measured

        return OpenVinoUpscaler(loaded, settings)
    return NcnnUpscaler(loaded, settings)


def measure_engines(
    loaded: LoadedModel, settings: EngineSettings, candidates: list[CpuChoice], side: int = PROBE_SIDE
) -> dict:
    """Seconds a `side` x `side` frame takes each of `candidates` on this CPU (fastest of
    PROBE_ROUNDS, alternating), and the fastest. A candidate that fails on the frame (an export
    that does not go through) is said in one line and left out."""
    side = max(side, loaded.descriptor.min_size)
    frame = anime_frame(side, side, seed=0)[None]
    upscalers = {choice: _upscaler(loaded, settings, choice) for choice in candidates}
    for choice, upscaler in list(upscalers.items()):
        try:
            upscaler.upscale(frame)  # warm-up: first-call allocations, pipelines, graph export and compile
        except GraphExportError as exc:
            print(f"remaster: {exc}; --engine auto leaves {choice.engine} out", file=sys.stderr)
            del upscalers[choice]
    times: dict[CpuChoice, float] = {choice: float("inf") for choice in upscalers}
    for _ in range(PROBE_ROUNDS):
        for choice, upscaler in upscalers.items():
            times[choice] = min(times[choice], _seconds(upscaler, frame))
    fastest = min(times, key=times.__getitem__)
    return {"choice": fastest, "seconds": {choice.label: value for choice, value in times.items()}, "side": side}


def choose_cpu_engine(
    loaded: LoadedModel,
    settings: EngineSettings,
    side: int = PROBE_SIDE,
    status: Callable[[str], None] = lambda message: None,
) -> CpuChoice:
    """`--engine auto` on a CPU: the one candidate where there is one, else the cached choice for
    this model, precision and CPU, else measure it now on a `side` x `side` frame (`status` is told
    so as it begins: it takes seconds)."""
    candidates = cpu_candidates(loaded, settings)
    if len(candidates) == 1:
        return candidates[0]
    key = cache_key(loaded, cpu_threads(), settings.precision)
    path = cache_path()
    entries = read_json_cache(path)
    known = entries.get(key, {})
    cached = next(
        (c for c in candidates if (c.engine, c.precision) == (known.get("engine"), known.get("precision"))), None
    )
    if cached is not None:
        return cached
    status("measuring engines (once for this model on this CPU)")
    measured = measure_engines(loaded, settings, candidates, side)
    choice: CpuChoice = measured["choice"]
    said = ", ".join(f"{label} {value:.3f} s" for label, value in measured["seconds"].items())
    print(
        f"remaster: measured the CPU engines once for {loaded.descriptor.name}: {said} a {measured['side']} px"
        f" frame; using {choice.label} (cached in {path})",
        file=sys.stderr,
    )
    entries[key] = {
        "engine": str(choice.engine),
        "precision": choice.precision,
        "seconds": measured["seconds"],
        "side": measured["side"],
    }
    write_json_cache(path, entries)
    return choice


def resolve_engine_choice(
    loaded: LoadedModel, settings: EngineSettings, status: Callable[[str], None] = lambda message: None
) -> EngineSettings:
    """`settings` with its device and engine decided (see the module docstring): what the video
    job fixes once in its plan, so that every worker and every resumed run uses the same engine.
    `status` is told when `auto` measures the engines."""
    engine = Engine(settings.engine)
    if engine == Engine.OPENVINO:
        import_openvino()  # one line naming the extra where it is missing
        if settings.compile:
            raise UsageError("--compile compiles the torch engine's network; OpenVINO compiles its own graph")
        return replace(settings, device=str(resolve_device(settings.device, engine)))
    if engine == Engine.TENSORRT:
        import_tensorrt()  # one line naming the extra where it is missing
        from remaster.engines.tensorrt_engine.upscaler import tensorrt_device  # its extra: remaster[tensorrt]

        if settings.compile:
            raise UsageError("--compile compiles the torch engine's network; TensorRT builds its own engines")
        return replace(settings, device=str(tensorrt_device(settings.device)))
    device = resolve_device(settings.device, engine)
    # Resolved once: an `auto` left in the settings could be resolved differently by the engine.
    settings = replace(settings, device=str(device))
    if device.type == VULKAN:
        if engine == Engine.TORCH:
            raise UsageError(f"--engine torch runs on cpu or cuda, not {device}; use --engine ncnn or auto")
        if settings.compile:
            raise UsageError(f"--compile compiles the torch engine's network; on {device} ncnn runs its own kernels")
        return replace(settings, engine=Engine.NCNN)
    if device.type != "cpu":
        if engine == Engine.NCNN:
            raise UsageError(f"--engine ncnn runs on cpu or vulkan[:N], not {device}; use --device vulkan")
        chosen = gpu_engine(engine, device, tensorrt_available(), settings.compile)
        return replace(settings, engine=chosen, fallback=engine == Engine.AUTO and chosen == Engine.TENSORRT)
    if engine == Engine.AUTO and os.environ.get(ENGINE_ENV):
        try:
            engine = parse_engine(os.environ[ENGINE_ENV])
        except UsageError as exc:
            raise UsageError(f"${ENGINE_ENV}: {exc}") from None
    if engine == Engine.NCNN and settings.compile:
        raise UsageError("--compile compiles the torch engine's network; the ncnn engine has its own kernels")
    if engine == Engine.AUTO:
        # --compile asks for the torch engine; otherwise the fastest engine and precision for this
        # model on this CPU.
        if not settings.compile:
            choice = choose_cpu_engine(loaded, settings, status=status)
            return replace(settings, engine=choice.engine, precision=choice.precision)
        engine = Engine.TORCH
    if settings.precision == Precision.AUTO:  # a precision by name, as the video job records it
        dtype = torch.float32 if engine == Engine.NCNN else _cpu_dtype(loaded, Precision.AUTO)
        settings = replace(settings, precision=precision_name(dtype))
    return replace(settings, engine=engine)


def make_upscaler(loaded: LoadedModel, settings: EngineSettings) -> Upscaler:
    """The upscaler for `settings.engine` on `settings.device` (see the module docstring)."""
    settings = resolve_engine_choice(loaded, settings)
    # The graph engines' modules import their extras (onnx, openvino): only where one is chosen.
    if settings.engine == Engine.OPENVINO:
        from remaster.engines.openvino_engine.upscaler import OpenVinoUpscaler

        return OpenVinoUpscaler(loaded, settings)
    if settings.engine == Engine.TENSORRT:
        from remaster.engines.tensorrt_engine.upscaler import TensorRtUpscaler

        return TensorRtUpscaler(loaded, settings, fallback=settings.fallback)
    return NcnnUpscaler(loaded, settings) if settings.engine == Engine.NCNN else TorchUpscaler(loaded, settings)


def gpu_engine(engine: Engine, device: torch.device, tensorrt_installed: bool, compile: bool) -> Engine:
    """The engine on a GPU PyTorch drives (CUDA, ROCm, MPS, XPU) for `--engine` torch or auto: `auto`
    takes tensorrt on an NVIDIA GPU where TensorRT is installed (not with --compile, which asks for
    the torch engine), else torch."""
    nvidia = device.type == "cuda" and not torch.version.hip
    if engine == Engine.AUTO and nvidia and tensorrt_installed and not compile:
        return Engine.TENSORRT
    return Engine.TORCH

"""`remaster bench`: model-only throughput of a model for each precision this machine can run."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from remaster.engines.choice import make_upscaler, resolve_engine_choice
from remaster.engines.device import cpu_has_bf16, resolve_device, resolve_precision
from remaster.engines.kinds import Engine
from remaster.engines.settings import EngineSettings
from remaster.engines.vulkan import VULKAN, vulkan_device
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model


@dataclass(frozen=True)
class BenchRow:
    family: str  # Family: realcugan, realesrgan, waifu2x
    precision: str
    seconds_per_frame: float  # median over the timed frames
    psnr_vs_fp32: float
    auto: bool  # the precision `--precision auto` takes for this model here


def available_precisions(device: torch.device, engine: str = Engine.AUTO) -> list[str]:
    if device.type == VULKAN:
        return ["fp32", "fp16"] if vulkan_device(device.index or 0).fp16 else ["fp32"]
    if device.type == "cpu" and engine == Engine.NCNN:
        return ["fp32"]  # ncnn's CPU path runs fp32 only
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    peak = 255.0 if a.dtype == np.uint8 else 65535.0
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def run_bench(
    model_name: str,
    width: int,
    height: int,
    frames: int,
    device: str,
    tile: str,
    engine: str = Engine.AUTO,
    status: Callable[[str], None] = lambda message: None,
) -> list[BenchRow]:
    """Each precision's row. `status` is told what is measured as it begins: the precision and
    engine, the warm-up, each timed frame (outside the timed part)."""
    resolved = resolve_device(device, engine)
    clip = np.stack([anime_frame(height, width, seed=i) for i in range(frames)])
    rows, reference = [], None
    for precision in available_precisions(resolved, engine):
        status(f"{precision}: loading model")
        loaded = load_model(model_name)  # anew: an engine may set the network to its precision in place
        settings = resolve_engine_choice(loaded, EngineSettings(str(resolved), precision, tile, engine=engine), status)
        measuring = f"{precision} on {settings.engine} ({settings.device})"
        status(f"{measuring}: starting the engine")
        upscaler = make_upscaler(loaded, settings)
        status(f"{measuring}: warm-up")
        upscaler.upscale(clip[:1])  # warm-up: first-call allocations and kernel selection
        times, outputs = [], []
        for number, frame in enumerate(clip, 1):
            status(f"{measuring}: frame {number}/{frames}")
            if resolved.type == "cuda":
                torch.cuda.synchronize(resolved)
            start = time.perf_counter()
            outputs.append(upscaler.upscale(frame[None])[0])
            times.append(time.perf_counter() - start)
        result = np.stack(outputs)
        reference = result if reference is None else reference
        auto = resolve_precision("auto", resolved, upscaler.descriptor.auto_cpu_bf16)
        seconds, fidelity = statistics.median(times), psnr(result, reference)
        rows.append(BenchRow(upscaler.descriptor.family, precision, seconds, fidelity, upscaler.dtype == auto))
    return rows

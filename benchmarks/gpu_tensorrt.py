"""benchmarks/gpu.py's tensorrt rows: the tensorrt engine (engines/tensorrt_engine) beside the torch
engine's rows, for each preset and batch, fp16, model only, frames already on the GPU.

Each row: frames per second (median of the timed batches after two warm-up batches), the warm-up's
seconds (the first time, the ONNX export and the TensorRT build of each engine: minutes; then the
cache), the peak GPU memory torch saw (TensorRT's own allocations are not in it), the ratio to the
torch engine's fps at the same preset and batch in the same run, and the dB of the engine's 8-bit
output against the torch engine's true fp32 (TF32 off) on one frame. Where there is no CUDA GPU or
no TensorRT, one row per preset says so, so that `--smoke` on a CPU runs this code path too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from remaster.core.presets import get_preset
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model

MISSING = "skipped: needs a CUDA GPU and TensorRT (pip install 'remaster[tensorrt]')"


@dataclass
class TensorRtRow:
    preset: str
    batch: int
    fps: float | None  # None: not measured here, or failed (the reason in `note`)
    warm_up_s: float | None
    peak_gpu_mib: float | None
    of_torch: float | None  # fps against the torch engine's fp16 row of this preset and batch
    db_vs_fp32: float | None  # the first frame against the torch engine in fp32 with TF32 off, 8-bit
    note: str = ""


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _true_fp32(preset: str, device: torch.device, frame: np.ndarray) -> np.ndarray:
    was = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return TorchUpscaler(load_model(get_preset(preset).model), EngineSettings(str(device), "fp32")).upscale(frame)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = was


def _row(
    preset: str, device: torch.device, size: tuple[int, int], batch: int, frames: int, reference: dict
) -> TensorRtRow:
    """One row; `reference`: the true fp32 output of the first frame by preset, made once."""
    from remaster.engines.tensorrt_engine.upscaler import TensorRtUpscaler

    width, height = size
    torch.cuda.reset_peak_memory_stats(device)
    try:
        settings = EngineSettings(str(device), "fp16", "auto", engine="tensorrt")
        upscaler = TensorRtUpscaler(load_model(get_preset(preset).model), settings)
        stack = np.stack([anime_frame(height, width, seed=i) for i in range(batch)])
        batch_frames = torch.from_numpy(stack).to(device)
        started = time.perf_counter()
        for _ in range(2):
            upscaler.upscale(batch_frames)
        torch.cuda.synchronize(device)
        warm_up = time.perf_counter() - started
        times = []
        for _ in range(frames):
            start = time.perf_counter()
            upscaler.upscale(batch_frames)
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        first = upscaler.upscale(batch_frames)[:1].cpu().numpy()  # through this batch's engine
        if preset not in reference:
            reference[preset] = _true_fp32(preset, device, stack[:1])
        db = _psnr(first, reference[preset])
    except Exception as exc:  # a build that fails, out of memory: a row with its error, not a failed run
        return TensorRtRow(preset, batch, None, None, None, None, None, str(exc).splitlines()[0][:120])
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    return TensorRtRow(preset, batch, batch / statistics.median(times), warm_up, peak, None, db)


def tensorrt_rows(
    presets,
    device: torch.device,
    size: tuple[int, int],
    batches,
    frames: int,
    torch_fps: dict[tuple[str, int], float],
    on_row: Callable[[TensorRtRow], None],
) -> list[TensorRtRow]:
    """The rows for `presets` x `batches`, each handed to `on_row` as it finishes; `torch_fps`: the
    torch engine's fp16 fps by (preset, batch)."""
    from remaster.engines.tensorrt_engine.runtime import tensorrt_available

    if device.type != "cuda" or not tensorrt_available():
        missing = [TensorRtRow(preset, 1, None, None, None, None, None, MISSING) for preset in presets]
        for row in missing:
            on_row(row)
        return missing
    rows = []
    reference: dict[str, np.ndarray] = {}
    for preset in presets:
        for batch in batches:
            row = _row(preset, device, size, batch, frames, reference)
            torch_value = torch_fps.get((preset, batch))
            if row.fps is not None and torch_value:
                row.of_torch = row.fps / torch_value
            rows.append(row)
            on_row(row)
    return rows


def tensorrt_section(
    presets, device: torch.device, size: tuple[int, int], batches, frames: int, model_rows, on_row
) -> list[TensorRtRow]:
    """Measure the rows (each to `on_row` as it finishes: gpu.json), print their table (gpu.py's one call).
    `model_rows`: the torch engine's model-only rows of this run (dicts, as gpu.json holds them)."""
    torch_fps = {(r["preset"], r["batch"]): r["fps"] for r in model_rows if r["switch"] == "none" and r["fps"]}
    rows = tensorrt_rows(presets, device, size, batches, frames, torch_fps, on_row)

    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = ["preset", "batch", "fps", "warm-up s", "peak GPU MiB", "of torch fp16", "vs true fp32 dB", "note"]
    cells = [
        [r.preset, str(r.batch), fmt(r.fps), fmt(r.warm_up_s, 1), fmt(r.peak_gpu_mib, 0), fmt(r.of_torch),
         fmt(r.db_vs_fp32, 1), r.note]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(cell) for cell in column) for column in zip(header, *cells, strict=True)]
    print()
    print(f"tensorrt engine, fp16, model only, {size[0]}x{size[1]} input: median of {frames} batches")
    for line in [header, *cells]:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    return rows

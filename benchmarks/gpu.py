"""What a user of a GPU needs to know, in one command: model-only fps, fp16 fidelity, GPU memory,
and the whole command's fps with each encoder.

    python benchmarks/gpu.py                       # on cuda: 1920x1080 input, within about 8 minutes
    python benchmarks/gpu.py --device cpu --size 192x144 --frames 2 --smoke    # the CI smoke run

1. Model only, for each preset (2x-conservative, 2x-pro-conservative, 4x-conservative): fp16
   (fp32 on a CPU), batch 1, 2 and 4 with no speed switch; at batch 1 also each switch alone
   (SWITCHES: cuDNN's benchmark mode, torch.compile, torch.compile with CUDA graphs); the median
   seconds per batch over `--frames` timed batches after two warm-up batches, as frames per
   second; the warm-up's seconds (the compile's cost); the peak GPU memory of each; fp16 against
   fp32 in dB on one frame. A switch that fails is a row with its error, not a failed run.
2. The whole `remaster` command, in a child process, on a generated episode of `--seconds` at
   `--size`, 2x-conservative, with a fast preset of x264, x265 and SVT-AV1, reuse off (every
   frame through the model, as in 1); its fps from the run's own summary, and its ratio to the
   model-only fps at batch 1 measured in this same run; each stage's busy share and the
   bottleneck from the run's last progress report (does the encoder keep up?).

A table on stdout; with $OUT set, the same as JSON in $OUT/gpu.json. Ratios are measured side by
side in one run; the absolute numbers are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gpu_tensorrt import tensorrt_section

from remaster.core.presets import get_preset
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.engines.base import EngineSettings
from remaster.engines.device import device_label, resolve_device
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model

PRESETS = ("2x-conservative", "2x-pro-conservative", "4x-conservative")
# A fast preset of each encoder: what a GPU run needs to keep up with the model.
ENCODERS = {"x264": "veryfast", "x265": "ultrafast", "svtav1": "10"}
# The speed switches, each measured alone against "none" (EngineSettings fields); none is kept on
# by default in the engine until this table shows it pays.
SWITCHES = {
    "none": {},
    "cudnn.benchmark": {"cudnn_benchmark": True},
    "compile": {"compile": True},
    "compile+graphs": {"compile": True, "compile_mode": "reduce-overhead"},
}


@dataclass
class ModelRow:
    preset: str
    precision: str
    batch: int
    switch: str  # a key of SWITCHES
    fps: float | None  # None: this configuration failed (its error in `note`)
    warm_up_s: float | None
    peak_gpu_mib: float | None
    note: str = ""


@dataclass
class CommandRow:
    codec: str
    speed: str
    fps: float
    of_model_only: float  # fps against the model-only fps of the same preset, batch 1, no switch
    busy: dict[str, float]  # each stage's busy percent at the last progress report (video/busy.py)
    bottleneck: str  # the stage busiest: whether the encoder keeps up with the model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure_model(
    preset: str, device: torch.device, size: tuple[int, int], batch: int, frames: int, switch: str
) -> ModelRow:
    precision = "fp16" if device.type == "cuda" else "fp32"
    width, height = size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        engine = EngineSettings(str(device), precision, "auto", **SWITCHES[switch])
        upscaler = TorchUpscaler(load_model(get_preset(preset).model), engine)
        # Frames already on the device: the model alone, not the host-to-device copy.
        batch_frames = torch.from_numpy(np.stack([anime_frame(height, width, seed=i) for i in range(batch)]))
        batch_frames = batch_frames.to(device)
        started = time.perf_counter()
        for _ in range(2):  # warm-up: cuDNN's algorithm search, the compile, the graphs' capture
            upscaler.upscale(batch_frames)
        _sync(device)
        warm_up = time.perf_counter() - started
        times = []
        for _ in range(frames):
            start = time.perf_counter()
            upscaler.upscale(batch_frames)
            _sync(device)
            times.append(time.perf_counter() - start)
    except (RuntimeError, torch.OutOfMemoryError) as exc:  # out of memory, a compile failure
        return ModelRow(preset, precision, batch, switch, None, None, None, str(exc).splitlines()[0][:120])
    finally:
        torch.backends.cudnn.benchmark = False  # the next row starts from the default
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return ModelRow(preset, precision, batch, switch, batch / statistics.median(times), warm_up, peak)


def fp16_fidelity(preset: str, device: torch.device, size: tuple[int, int]) -> float | None:
    """fp16 against fp32, in dB, on one anime-like frame; None on a CPU (it runs fp32 only)."""
    if device.type != "cuda":
        return None
    width, height = size
    frame = anime_frame(height, width, seed=7)[None]
    model = get_preset(preset).model
    outputs = [
        TorchUpscaler(load_model(model), EngineSettings(str(device), precision, "auto")).upscale(frame)
        for precision in ("fp32", "fp16")
    ]
    return _psnr(*outputs)


def measure_command(
    episode: Path, folder: Path, device: torch.device, codec: str, speed: str
) -> tuple[float, dict[str, float], str]:
    """The whole command's fps, from its own summary ("done" event), and each stage's busy share
    and the bottleneck from its last progress report."""
    output = folder / f"out-{codec}.mkv"
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), "--preset", PRESETS[0]]
    precision = "fp16" if device.type == "cuda" else "fp32"  # the model-only measurement's
    command += ["--device", str(device), "--precision", precision, "--codec", codec, "--speed", speed, "--reuse", "off"]
    command += ["--overwrite", "--json-progress"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"remaster with {codec} failed: {run.stderr.strip()[-500:]}")
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    done = next(event for event in reversed(events) if event["event"] == "done")
    last = next(event for event in reversed(events) if event["event"] == "progress")
    output.unlink()
    return done["fps"], last["busy"], last["bottleneck"]


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="1920x1080", help="input frame size, WxH")
    parser.add_argument("--frames", type=int, default=10, help="timed batches per configuration")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the episode for the whole command")
    parser.add_argument(
        "--smoke", action="store_true", help="one preset, batch 1 and 2, cudnn.benchmark, no compile, a 1 s episode"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    size = tuple(int(v) for v in args.size.split("x"))
    presets = PRESETS[:1] if args.smoke else PRESETS
    batches = (1, 2) if args.smoke else (1, 2, 4)
    # Each switch at batch 1 only: compiling every batch size of every preset would not fit in 8 minutes.
    switches = ("cudnn.benchmark",) if args.smoke else tuple(SWITCHES)[1:]
    seconds = 1.0 if args.smoke else args.seconds

    model_rows = []
    for preset in presets:
        model_rows += [measure_model(preset, device, size, batch, args.frames, "none") for batch in batches]
        model_rows += [measure_model(preset, device, size, 1, args.frames, switch) for switch in switches]
    fidelity = {preset: fp16_fidelity(preset, device, size) for preset in presets}
    base = next(r.fps for r in model_rows if r.preset == PRESETS[0] and r.batch == 1 and r.switch == "none")
    with tempfile.TemporaryDirectory() as tmp:
        spec = EpisodeSpec(width=size[0], height=size[1], seconds=seconds)
        episode = make_episode(Path(tmp) / "episode.mkv", spec)
        command_rows = []
        for codec, speed in ENCODERS.items():
            fps, busy, bottleneck = measure_command(episode, Path(tmp), device, codec, speed)
            command_rows.append(CommandRow(codec, speed, fps, fps / base, busy, bottleneck))

    where = device_label(str(device))
    print(_table(
        f"model only, {args.size} input, on {where}: median of {args.frames} batches",
        ["preset", "precision", "batch", "switch", "fps", "warm-up s", "peak GPU MiB", "fp16 vs fp32 dB", "note"],
        [[r.preset, r.precision, str(r.batch), r.switch, _fmt(r.fps), _fmt(r.warm_up_s, 1), _fmt(r.peak_gpu_mib, 0),
          _fmt(fidelity[r.preset], 1), r.note] for r in model_rows],
    ))  # fmt: skip
    tensorrt = tensorrt_section(presets, device, size, batches, args.frames, model_rows)
    print()
    print(_table(
        f"whole command, {PRESETS[0]}, {seconds:g} s episode at {args.size}, reuse off",
        ["codec", "speed", "fps", "of model-only fps", "busy: decode/model/encode %", "bottleneck"],
        [[r.codec, r.speed, _fmt(r.fps), f"{r.of_model_only:.0%}", "/".join(f"{v:.0f}" for v in r.busy.values()),
          r.bottleneck] for r in command_rows],
    ))  # fmt: skip
    if os.environ.get("OUT"):
        result = {
            "device": where,
            "size": args.size,
            "torch": torch.__version__,
            "model_only": [asdict(r) for r in model_rows],
            "fp16_vs_fp32_db": fidelity,
            "whole_command": [asdict(r) for r in command_rows],
            "tensorrt": tensorrt,
        }
        (Path(os.environ["OUT"]) / "gpu.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

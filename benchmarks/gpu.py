"""What a user of a GPU needs to know: model-only fps, fp16 fidelity, GPU memory, and the whole
command's fps with each encoder, in four parts that each fit in 10 minutes on one GPU.

    python benchmarks/gpu.py --part model       # 1. model only (about 6 minutes on cuda, 1080p)
    python benchmarks/gpu.py --part fidelity    # 2. fp16 against true fp32 (about 2 minutes)
    python benchmarks/gpu.py --part tensorrt    # 3. the tensorrt engine beside part 1's rows (builds: minutes)
    python benchmarks/gpu.py --part command     # 4. the whole command (about 9 minutes)
    python benchmarks/gpu.py --device cpu --size 128x96 --frames 2 --smoke     # all four, small: CI

1. Model only, for each preset (2x-conservative, 2x-pro-conservative, 4x-conservative): fp16
   (fp32 on a CPU), batch 1, 2 and 4 with no speed switch; at batch 1 also each switch alone
   (SWITCHES). Each row: the median seconds per batch over `--frames` timed batches after two
   warm-up batches, as frames per second; the warm-up's seconds; the tiles a frame ran in (a
   row that ran tiled says so in its note: its fps is not the whole-frame fps); host<->device
   copies per batch, counted, beside `state_moves` (tile states copied between devices); peak
   GPU memory reserved and allocated over the timed batches only (the peaks are reset after the
   warm-up, so cuDNN's algorithm trials in benchmark mode are not in them); the note names a
   compile that fell back to eager and CUDA graphs that torch skipped. A switch that fails is a
   row with its error, not a failed run.
2. fp16 against true fp32 (IEEE: TF32 off, as the engine sets it for any fp32 work), PSNR in dB
   over `FIDELITY_FRAMES` different frames: the worst and the median.
3. The tensorrt engine (benchmarks/gpu_tensorrt.py): each preset at batch 1, 2 and 4, fp16, its fps
   against part 1's torch row of the same preset and batch in the same gpu.json (run part 1 first,
   into the same $OUT), and its dB against true fp32. Without CUDA or TensorRT: one row per preset
   saying so.
4. The whole `remaster` command (the torch engine, which part 1 measured), in a child process, on
   a generated episode of `--seconds` (60 s
   by default, so that start-up is under 5% of it) at `--size`, 2x-conservative, `--batch
   COMMAND_BATCH`, with a fast preset of x264, x265 and SVT-AV1, once with `--reuse off` (every
   frame through the model) and once with `--reuse auto`; its fps from the run's own summary,
   divided by the model-only fps at the same batch measured first in this same part (and freed
   from the GPU before any child starts); each stage's busy share and the bottleneck from the
   run's last progress report (does the encoder keep up?).

A table on stdout; with $OUT set, each row is added to $OUT/gpu.json as soon as it is measured,
so that a part that fails (an encoder that does not open) keeps the rows before it. Ratios are
measured side by side in one run; the absolute numbers are this machine's.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
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
from remaster.engines.accounting import TransferCount
from remaster.engines.device import device_label, resolve_device
from remaster.engines.settings import EngineSettings
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
FIDELITY_FRAMES = 6  # different frames (seeds) fp16 is compared with fp32 on
COMMAND_BATCH = 2  # the whole command's --batch, and the model-only row it is divided by
MIB = 2**20


@dataclass
class ModelRow:
    preset: str
    precision: str
    batch: int
    switch: str  # a key of SWITCHES
    fps: float | None  # None: this configuration failed (its error in `note`)
    warm_up_s: float | None
    tiles: int | None  # tiles a frame ran in (1: whole frames)
    copies_per_batch: float | None  # host <-> device copies a batch, counted (engines/accounting.py)
    state_moves: int | None  # tile states copied between devices in the last batch
    peak_reserved_mib: float | None  # over the timed batches only: no cuDNN benchmark trials
    peak_allocated_mib: float | None
    note: str = ""


@dataclass
class FidelityRow:
    preset: str
    frames: int
    worst_db: float
    median_db: float
    fp32: str  # the float32 mode the reference ran in, as cuDNN was set ("ieee")


@dataclass
class CommandRow:
    codec: str
    speed: str
    reuse: str
    batch: int
    seconds: float  # the episode's length
    fps: float
    of_model_only: float  # fps against the model-only fps of the same preset and batch, no switch
    busy: dict[str, float]  # each stage's busy percent at the last progress report (video/busy.py)
    bottleneck: str  # the stage busiest: whether the encoder keeps up with the model


class _SkippedGraphs(logging.Handler):
    """Counts torch's messages that it skipped CUDA graphs (torch._inductor logs why)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "skipping cudagraphs" in message.lower():
            self.reasons.append(message.strip().splitlines()[0][:80])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _free_gpu(device: torch.device) -> None:
    """What this process holds on the GPU given back, so that a child finds it free."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _note(upscaler: TorchUpscaler, graphs: _SkippedGraphs) -> str:
    notes = []
    if upscaler.tiles_run > 1:
        notes.append(f"ran TILED in {upscaler.tiles_run} tiles")
    if upscaler.compile_state is not None and upscaler.compile_state.failed:
        notes.append("compile FAILED: ran eager")
    if graphs.reasons:
        notes.append(f"CUDA graphs skipped: {graphs.reasons[0]}")
    return "; ".join(notes)


def measure_model(
    preset: str, device: torch.device, size: tuple[int, int], batch: int, frames: int, switch: str
) -> ModelRow:
    precision = "fp16" if device.type == "cuda" else "fp32"
    width, height = size
    graphs = _SkippedGraphs()
    logging.getLogger("torch._inductor").addHandler(graphs)
    upscaler = None
    try:
        engine = EngineSettings(str(device), precision, "auto", **SWITCHES[switch])
        upscaler = TorchUpscaler(load_model(get_preset(preset).model), engine)
        host = np.stack([anime_frame(height, width, seed=i) for i in range(batch)])
        started = time.perf_counter()
        for _ in range(2):  # warm-up: cuDNN's algorithm search, the compile, the graphs' capture
            upscaler.upscale(host)
        _sync(device)
        warm_up = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)  # the timed batches' own peak, not the trials'
        times = []
        with TransferCount() as copies:
            for _ in range(frames):
                start = time.perf_counter()
                upscaler.upscale(host)  # from host memory, as the pipeline sends frames
                _sync(device)
                times.append(time.perf_counter() - start)
    except (RuntimeError, torch.OutOfMemoryError) as exc:  # out of memory, a compile failure
        return ModelRow(preset, precision, batch, switch, *[None] * 7, note=str(exc).splitlines()[0][:120])
    finally:
        logging.getLogger("torch._inductor").removeHandler(graphs)
    reserved = torch.cuda.max_memory_reserved(device) / MIB if device.type == "cuda" else None
    allocated = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    row = ModelRow(
        preset, precision, batch, switch, batch / statistics.median(times), warm_up, upscaler.tiles_run,
        copies.copies / frames, upscaler.state_moves, reserved, allocated, _note(upscaler, graphs),
    )  # fmt: skip
    del upscaler
    _free_gpu(device)
    return row


def fp16_fidelity(preset: str, device: torch.device, size: tuple[int, int]) -> FidelityRow | None:
    """fp16 against true fp32 over several frames; None on a CPU (it runs fp32 only)."""
    if device.type != "cuda":
        return None
    width, height = size
    frames = np.stack([anime_frame(height, width, seed=7 + i) for i in range(FIDELITY_FRAMES)])
    model = get_preset(preset).model
    outputs = {}
    for precision in ("fp32", "fp16"):
        upscaler = TorchUpscaler(load_model(model), EngineSettings(str(device), precision, "auto"))
        outputs[precision] = np.concatenate([upscaler.upscale(frame[None]) for frame in frames])
        del upscaler
        _free_gpu(device)
    scores = [_psnr(a, b) for a, b in zip(outputs["fp32"], outputs["fp16"], strict=True)]
    # The engine sets IEEE fp32 for each call (engines/device.model_numerics); said, so that a row
    # cannot be read as TF32's.
    return FidelityRow(preset, len(scores), min(scores), statistics.median(scores), "ieee")


def measure_command(
    episode: Path, folder: Path, device: torch.device, codec: str, speed: str, reuse: str, batch: int
) -> tuple[float, dict[str, float], str]:
    """The whole command's fps, from its own summary ("done" event), and each stage's busy share
    and the bottleneck from its last progress report."""
    output = folder / f"out-{codec}.mkv"
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), "--preset", PRESETS[0]]
    precision = "fp16" if device.type == "cuda" else "fp32"  # the model-only measurement's
    command += ["--device", str(device), "--precision", precision, "--codec", codec, "--speed", speed]
    command += ["--reuse", reuse, "--batch", str(batch), "--overwrite", "--json-progress"]
    # The engine of the model-only figure it is divided by (auto would take tensorrt where installed).
    command += ["--engine", "torch"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"remaster with {codec} failed: {run.stderr.strip()[-500:]}")
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    done = next(event for event in reversed(events) if event["event"] == "done")
    last = next(event for event in reversed(events) if event["event"] == "progress" and event["busy"])
    output.unlink()
    return done["fps"], last["busy"], last["bottleneck"]


class Results:
    """$OUT/gpu.json, rewritten whole after each row (a file that is always complete JSON)."""

    def __init__(self, header: dict) -> None:
        out = os.environ.get("OUT")
        self.path = Path(out) / "gpu.json" if out else None
        self.data = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}
        self.data.update(header)

    def add(self, part: str, row: object) -> None:
        self.data.setdefault(part, []).append(asdict(row))
        if self.path is not None:
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(self.data, indent=1))
            partial.replace(self.path)


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def model_part(args: argparse.Namespace, device: torch.device, results: Results) -> None:
    presets = PRESETS[:1] if args.smoke else PRESETS
    batches = (1, 2) if args.smoke else (1, 2, 4)
    # Each switch at batch 1 only: compiling every batch size of every preset would not fit in 10 minutes.
    switches = ("cudnn.benchmark",) if args.smoke else tuple(SWITCHES)[1:]
    rows = []
    for preset in presets:
        configurations = [(batch, "none") for batch in batches] + [(1, switch) for switch in switches]
        for batch, switch in configurations:
            rows.append(measure_model(preset, device, args.size, batch, args.frames, switch))
            results.add("model_only", rows[-1])
    print(_table(
        f"model only, {args.size_text} input from host memory, on {results.data['device']}: median of {args.frames}",
        ["preset", "precision", "batch", "switch", "fps", "warm-up s", "tiles", "copies/batch", "state moves",
         "peak reserved MiB", "peak allocated MiB", "note"],
        [[r.preset, r.precision, str(r.batch), r.switch, _fmt(r.fps), _fmt(r.warm_up_s, 1), _fmt(r.tiles, 0),
          _fmt(r.copies_per_batch, 1), _fmt(r.state_moves, 0), _fmt(r.peak_reserved_mib, 0),
          _fmt(r.peak_allocated_mib, 0), r.note] for r in rows],
    ))  # fmt: skip


def fidelity_part(args: argparse.Namespace, device: torch.device, results: Results) -> None:
    rows = []
    for preset in PRESETS[:1] if args.smoke else PRESETS:
        row = fp16_fidelity(preset, device, args.size)
        if row is not None:
            rows.append(row)
            results.add("fp16_vs_fp32", row)
    print(_table(
        f"fp16 against true fp32 (TF32 off), {FIDELITY_FRAMES} frames at {args.size_text}",
        ["preset", "frames", "worst dB", "median dB", "fp32"],
        [[r.preset, str(r.frames), _fmt(r.worst_db, 1), _fmt(r.median_db, 1), r.fp32] for r in rows]
        or [["(a CPU runs fp32 only)", "-", "-", "-", "-"]],
    ))  # fmt: skip


def command_part(args: argparse.Namespace, device: torch.device, results: Results) -> None:
    batch = 1 if args.smoke else COMMAND_BATCH
    seconds = 1.0 if args.smoke else args.seconds
    # The smoke run proves the loop and its table with one encoder; the others are the video tests'.
    encoders = dict(list(ENCODERS.items())[:1]) if args.smoke else ENCODERS
    base = measure_model(PRESETS[0], device, args.size, batch, args.frames, "none")
    results.add("model_only_for_command", base)
    _free_gpu(device)  # the children find the GPU as free as this process can leave it
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        episode = make_episode(Path(tmp) / "episode.mkv", EpisodeSpec(*args.size, seconds=seconds))
        for codec, speed in encoders.items():
            for reuse in ("off", "auto"):
                fps, busy, bottleneck = measure_command(episode, Path(tmp), device, codec, speed, reuse, batch)
                rows.append(CommandRow(codec, speed, reuse, batch, seconds, fps, fps / base.fps, busy, bottleneck))
                results.add("whole_command", rows[-1])
    print(_table(
        f"whole command, {PRESETS[0]}, {seconds:g} s episode at {args.size_text}, batch {batch}; "
        f"model only at batch {batch}: {_fmt(base.fps)} fps",
        ["codec", "speed", "reuse", "fps", "of model-only fps", "busy: decode/model/encode %", "bottleneck"],
        [[r.codec, r.speed, r.reuse, _fmt(r.fps), f"{r.of_model_only:.0%}",
          "/".join(f"{v:.0f}" for v in r.busy.values()), r.bottleneck] for r in rows],
    ))  # fmt: skip


def tensorrt_part(args: argparse.Namespace, device: torch.device, results: Results) -> None:
    """The tensorrt engine's rows (benchmarks/gpu_tensorrt.py), against this run's torch rows where the
    model part ran first into the same gpu.json."""
    presets = PRESETS[:1] if args.smoke else PRESETS
    batches = (1, 2) if args.smoke else (1, 2, 4)
    torch_rows = results.data.get("model_only", [])
    add = lambda row: results.add("tensorrt", row)  # noqa: E731
    tensorrt_section(presets, device, args.size, batches, args.frames, torch_rows, add)


PARTS = {"model": model_part, "fidelity": fidelity_part, "tensorrt": tensorrt_part, "command": command_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="1920x1080", help="input frame size, WxH")
    parser.add_argument("--frames", type=int, default=10, help="timed batches per configuration")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the episode for the whole command")
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all", help="which part (each fits 10 minutes)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one preset, batch 1 and 2, cudnn.benchmark, no compile, one encoder on a 1 s episode",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.size_text = args.size
    args.size = tuple(int(v) for v in args.size.split("x"))
    results = Results({"device": device_label(str(device)), "size": args.size_text, "torch": torch.__version__})
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            part(args, device, results)
            print()


if __name__ == "__main__":
    main()

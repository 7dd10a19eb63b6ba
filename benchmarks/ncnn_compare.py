"""remaster against the ncnn wheel: same frames, same .param/.bin, CPU, for every family.

    python benchmarks/ncnn_compare.py [--preset 2x-conservative ...] [--size 480x360] [--frames 16]
        [--precision auto,fp32] [--rounds 3] [--model-only]

For each `--preset` (repeatable; Real-CUGAN, waifu2x and Real-ESRGAN presets alike), ncnn runs
in this process with all cores, fp32 (no fp16/bf16 storage or arithmetic), with the family's
reference pre- and post-processing (remaster.engines.ncnn_engine.reference: padding, crop, round).
Whole jobs: remaster runs as the whole command, `remaster image FOLDER -o OUT`, after one untimed
run (the first run of a model at a frame size measures the CPU engines and exports and records its
graph, once per machine); ncnn as benchmarks/ncnn_job.py, a process that starts, loads the net and
reads, upscales and writes each PNG, as a user of the wheel runs it. Both are set beside ncnn in
this process as well: its model and PNG writing on frames decoded beforehand, net loaded and warm
(the stricter comparison). With `--model-only`, both run in this process on the decoded frames,
model alone (remaster's TorchUpscaler, untiled, after a warm-up frame; ncnn's first frame is
warmed up too). ncnn and each remaster precision alternate within each of
`--rounds` rounds; the table gives medians and ratios (above 1: remaster is faster), and the
worst frame's PSNR of remaster against ncnn.
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
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from remaster.architectures.descriptor import family_title
from remaster.bench.measure import psnr
from remaster.core.presets import get_preset
from remaster.engines.ncnn_engine.reference import ncnn_net, ncnn_upscale, recipe
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.imagefiles import read_image, write_image
from remaster.media.testcard import anime_frame
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _ncnn_in_process(model, net, frames: list[np.ndarray], out: Path) -> tuple[float, list[np.ndarray]]:
    """ncnn's model and PNG writing in this process, on decoded frames, net loaded and warm."""
    start = time.perf_counter()
    outputs = [ncnn_upscale(model, net, frame) for frame in frames]
    for i, upscaled in enumerate(outputs):
        Image.fromarray(upscaled).save(out / f"ncnn-{i:04d}.png")
    return time.perf_counter() - start, outputs


def measure(preset: str, frames_dir: Path, tmp: Path, args: argparse.Namespace, threads: int) -> list[str]:
    """One preset: rounds of ncnn and each remaster precision alternating; the table's lines."""
    model = packaged_models()[get_preset(preset).model]
    frames = [read_image(p) for p in sorted(frames_dir.iterdir())]
    net = ncnn_net(model.param, threads)
    ncnn_upscale(model, net, frames[0])  # warm-up: ncnn's first extraction allocates and packs weights
    recipe_path = tmp / "recipe.json"
    recipe_path.write_text(json.dumps(asdict(recipe(model, *frames[0].shape[:2]))))
    ncnn_job = [sys.executable, str(Path(__file__).with_name("ncnn_job.py")), str(recipe_path), str(model.param)]
    ncnn_job += [str(frames_dir), str(tmp / "ncnn-job"), str(threads)]
    upscalers = {}
    for precision in args.precision:
        if args.model_only:
            upscalers[precision] = TorchUpscaler(load_model(model.name), EngineSettings("cpu", precision, "0"))
            upscalers[precision].upscale(frames[0][None])  # warm-up: first-call allocations
        else:
            # Warm-up, as ncnn's: a model's first run at a frame size on a machine measures the CPU
            # engines, exports its graph and records it (seconds to minutes, once); the runs after
            # it are what a user's next pictures of that size cost.
            _timed(_remaster_image(preset, precision, frames_dir, tmp / f"ours-{precision}"))
    times: dict[str, list[float]] = {"ncnn": [], "ncnn job": [], **{p: [] for p in args.precision}}
    outputs: dict[str, list[np.ndarray]] = {}
    for _ in range(args.rounds):
        if args.model_only:
            start = time.perf_counter()
            outputs["ncnn"] = [ncnn_upscale(model, net, frame) for frame in frames]
            times["ncnn"].append(time.perf_counter() - start)
        else:
            seconds, outputs["ncnn"] = _ncnn_in_process(model, net, frames, tmp)
            times["ncnn"].append(seconds)
            times["ncnn job"].append(_timed(ncnn_job))
        for precision in args.precision:
            if args.model_only:
                start = time.perf_counter()
                outputs[precision] = [upscalers[precision].upscale(frame[None])[0] for frame in frames]
                times[precision].append(time.perf_counter() - start)
            else:
                ours_dir = tmp / f"ours-{precision}"
                times[precision].append(_timed(_remaster_image(preset, precision, frames_dir, ours_dir)))
                outputs[precision] = [read_image(p) for p in sorted(ours_dir.iterdir())]
    per_frame = {name: statistics.median(values) / len(frames) for name, values in times.items() if values}
    lines = []
    for precision in args.precision:
        ours = per_frame[precision]
        agreement = min(psnr(a, b) for a, b in zip(outputs[precision], outputs["ncnn"], strict=True))
        cells = [preset, family_title(model.family), precision, f"{ours:.3f}"]
        if not args.model_only:
            cells += [f"{per_frame['ncnn job']:.3f}", f"{per_frame['ncnn job'] / ours:.2f}x"]
        cells += [f"{per_frame['ncnn']:.3f}", f"{per_frame['ncnn'] / ours:.2f}x", f"{agreement:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _remaster_image(preset: str, precision: str, frames_dir: Path, out: Path) -> list[str]:
    command = [sys.executable, "-m", "remaster", "image", str(frames_dir), "-o", str(out)]
    return command + ["--preset", preset, "--device", "cpu", "--precision", precision, "--overwrite"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="repeatable (default: 2x-conservative)")
    parser.add_argument("--size", default="480x360")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--precision", default="auto", help="remaster's precisions, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-only", action="store_true", help="both in process, the model alone")
    args = parser.parse_args()
    args.precision = args.precision.split(",")
    presets = args.preset or ["2x-conservative"]
    width, height = (int(v) for v in args.size.split("x"))
    threads = os.cpu_count() or 1
    if args.model_only:
        print(
            f"{args.frames} frames of {width}x{height}, {threads} threads, medians of {args.rounds} alternating"
            " rounds; model only, in process; ncnn fp32"
        )
        print("| preset | family | precision | remaster s/frame | ncnn s/frame | remaster vs ncnn | worst dB |")
        print("|---|---|---|---|---|---|---|")
    else:
        print(
            f"{args.frames} frames of {width}x{height}, {threads} threads, medians of {args.rounds} alternating"
            " rounds; whole jobs: `remaster image` and benchmarks/ncnn_job.py (start, load, read, upscale, write);"
            " ncnn in process: its model and PNG writing on decoded frames, warm; ncnn fp32"
        )
        print(
            "| preset | family | remaster precision | remaster s/frame | ncnn job s/frame | remaster vs ncnn job"
            " | ncnn in process s/frame | remaster vs ncnn in process | worst dB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir = Path(tmp, "frames")
        frames_dir.mkdir()
        for i in range(args.frames):
            write_image(frames_dir / f"{i:04d}.png", anime_frame(height, width, seed=i))
        for preset in presets:
            for line in measure(preset, frames_dir, Path(tmp), args, threads):
                print(line, flush=True)


if __name__ == "__main__":
    main()

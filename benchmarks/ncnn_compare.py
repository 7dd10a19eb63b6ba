"""remaster against the ncnn wheel: same frames, same .param/.bin, CPU, for every family.

    python benchmarks/ncnn_compare.py [--preset 2x-conservative ...] [--size 480x360] [--frames 16]
        [--precision auto,fp32] [--rounds 3] [--model-only]

For each `--preset` (repeatable; Real-CUGAN, waifu2x and Real-ESRGAN presets alike), ncnn runs
in this process with all cores, fp32 (no fp16/bf16 storage or arithmetic), with the family's
reference pre- and post-processing (remaster.engines.ncnn_engine.reference: padding, crop, round).
remaster runs as the whole command, `remaster image FOLDER -o OUT`, start-up, PNG reading and
writing included, after one untimed run (ncnn's warm-up: the first run of a model at a frame size
measures the CPU engines and exports and records its graph, once per machine); ncnn's side is its
model and its PNG writing, on frames decoded beforehand; with `--model-only`, both run in this process
on the decoded frames, model alone (remaster's TorchUpscaler, untiled, after a warm-up frame; ncnn's
first frame is warmed up too). ncnn and each remaster precision alternate within each of
`--rounds` rounds; the table gives medians and ratios (above 1: remaster is faster), and the
worst frame's PSNR of remaster against ncnn.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from remaster.architectures.descriptor import family_title
from remaster.bench.measure import psnr
from remaster.core.presets import get_preset
from remaster.engines.ncnn_engine.reference import ncnn_net, ncnn_upscale
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.imagefiles import read_image, write_image
from remaster.media.testcard import anime_frame
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model


def measure(preset: str, frames_dir: Path, tmp: Path, args: argparse.Namespace, threads: int) -> list[str]:
    """One preset: rounds of ncnn and each remaster precision alternating; the table's lines."""
    model = packaged_models()[get_preset(preset).model]
    frames = [read_image(p) for p in sorted(frames_dir.iterdir())]
    net = ncnn_net(model.param, threads)
    ncnn_upscale(model, net, frames[0])  # warm-up: ncnn's first extraction allocates and packs weights
    upscalers = {}
    if args.model_only:
        for precision in args.precision:
            upscalers[precision] = TorchUpscaler(load_model(model.name), EngineSettings("cpu", precision, "0"))
            upscalers[precision].upscale(frames[0][None])  # warm-up: first-call allocations
    def remaster_image(precision: str) -> Path:
        ours_dir = tmp / f"ours-{precision}"
        command = [sys.executable, "-m", "remaster", "image", str(frames_dir), "-o", str(ours_dir)]
        command += ["--preset", preset, "--device", "cpu", "--precision", precision, "--overwrite"]
        subprocess.run(command, check=True, capture_output=True)
        return ours_dir

    if not args.model_only:
        for precision in args.precision:
            # Warm-up, as ncnn's: a model's first run at a frame size on a machine measures the CPU
            # engines, exports its graph and records it (seconds to minutes, once); the runs after
            # it are what a user's next pictures of that size cost.
            remaster_image(precision)
    times: dict[str, list[float]] = {"ncnn": [], **{p: [] for p in args.precision}}
    outputs: dict[str, list[np.ndarray]] = {}
    for _ in range(args.rounds):
        start = time.perf_counter()
        outputs["ncnn"] = [ncnn_upscale(model, net, frame) for frame in frames]
        if not args.model_only:
            for i, out in enumerate(outputs["ncnn"]):
                Image.fromarray(out).save(tmp / f"ncnn-{i:04d}.png")
        times["ncnn"].append(time.perf_counter() - start)
        for precision in args.precision:
            start = time.perf_counter()
            if args.model_only:
                outputs[precision] = [upscalers[precision].upscale(frame[None])[0] for frame in frames]
            else:
                ours_dir = remaster_image(precision)
            times[precision].append(time.perf_counter() - start)
            if not args.model_only:
                outputs[precision] = [read_image(p) for p in sorted(ours_dir.iterdir())]
    family = family_title(model.family)
    theirs = statistics.median(times["ncnn"]) / len(frames)
    lines = []
    for precision in args.precision:
        ours = statistics.median(times[precision]) / len(frames)
        agreement = min(psnr(a, b) for a, b in zip(outputs[precision], outputs["ncnn"], strict=True))
        cells = (preset, family, precision, f"{ours:.3f}", f"{theirs:.3f}", f"{theirs / ours:.2f}x", f"{agreement:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
    what = "model only, in process" if args.model_only else "remaster: the whole `remaster image` command"
    print(
        f"{args.frames} frames of {width}x{height}, {threads} threads, medians of {args.rounds} alternating rounds;"
        f" {what}; ncnn fp32, in process"
    )
    print("| preset | family | remaster precision | remaster s/frame | ncnn s/frame | remaster vs ncnn | worst dB |")
    print("|---|---|---|---|---|---|---|")
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

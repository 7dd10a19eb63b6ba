"""The engines side by side: torch, ncnn and OpenVINO on the CPU, ncnn on each Vulkan device,
and what `--engine auto` takes (the default engine).

    python benchmarks/engines.py [--models 2x-conservative,2x-esrgan-animevideo] [--size 96x64]
        [--frames 2] [--rounds 3]

Model only, in process, through the same `Upscaler` interface the commands use (pre- and
post-processing included). torch runs at bf16 where the CPU has AVX-512 BF16 or AMX, and fp32;
ncnn on the CPU at fp32 with every core; on each Vulkan device at fp32 and, where it has it, fp16.
OpenVINO at fp32 and, where the CPU has it, bf16 (its graphs exported and cached during the
warm-up). Each engine warms up on one frame, then the engines alternate for `--rounds` rounds of
`--frames` frames; the table gives the median seconds a frame over the rounds, the ratio to torch, and each
engine's agreement with torch fp32 (PSNR over the frames).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from remaster.bench.measure import psnr
from remaster.engines.choice import make_upscaler
from remaster.engines.device import cpu_has_bf16, device_label
from remaster.engines.openvino_engine.runtime import openvino_available
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.engines.vulkan import vulkan_devices
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model


def engines(vulkan: bool = True) -> dict[str, EngineSettings]:
    """Every engine this machine runs, torch first (the ratios are to it); Vulkan at fp32 and at
    fp16 where the device has it (on llvmpipe fp16 is emulated and no faster), unless not `vulkan`."""
    found = {"torch cpu fp32": EngineSettings("cpu", "fp32", "0", engine="torch")}
    if cpu_has_bf16():
        found = {"torch cpu bf16": EngineSettings("cpu", "bf16", "0", engine="torch"), **found}
    found["ncnn cpu fp32"] = EngineSettings("cpu", "fp32", "0", engine="ncnn")
    if openvino_available():
        found["openvino cpu fp32"] = EngineSettings("cpu", "fp32", "0", engine="openvino")
        if cpu_has_bf16():
            found["openvino cpu bf16"] = EngineSettings("cpu", "bf16", "0", engine="openvino")
    # The default: `--engine auto` with its own precision, measured (once, cached) by engines/choice.py.
    found["default (auto)"] = EngineSettings("cpu", "auto", "0", engine="auto")
    for device in vulkan_devices() if vulkan else []:
        name = device.name.split(" (")[0]  # llvmpipe (LLVM 15.0.6, 256 bits) -> llvmpipe
        for precision in ("fp32", "fp16") if device.fp16 else ("fp32",):
            found[f"ncnn vulkan:{device.index} {name} {precision}"] = EngineSettings(
                f"vulkan:{device.index}", precision, "0"
            )
    return found


def bench_model(name: str, clip: np.ndarray, rounds: int, vulkan: bool = True) -> list[tuple[str, float, float]]:
    reference = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0")).upscale(clip)
    upscalers = {label: make_upscaler(load_model(name), settings) for label, settings in engines(vulkan).items()}
    upscalers = {
        (f"{label}: {type(u).__name__.removesuffix('Upscaler').lower()} {u.precision}" if "auto" in label else label): u
        for label, u in upscalers.items()
    }
    for upscaler in upscalers.values():
        upscaler.upscale(clip[:1])  # warm-up: allocations, oneDNN primitives, ncnn pipelines
    seconds: dict[str, list[float]] = {label: [] for label in upscalers}
    quality: dict[str, float] = {}
    for _ in range(rounds):
        for label, upscaler in upscalers.items():
            start = time.perf_counter()
            out = np.stack([upscaler.upscale(frame[None])[0] for frame in clip])
            seconds[label].append((time.perf_counter() - start) / len(clip))
            quality[label] = psnr(out, reference)
    return [(label, statistics.median(times), quality[label]) for label, times in seconds.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="2x-conservative,2x-esrgan-animevideo,2x-waifu2x-art-no-denoise")
    parser.add_argument("--size", default="96x64")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    # llvmpipe, the software Vulkan device, takes 15-40x the CPU engines' time: leave it out at larger sizes.
    parser.add_argument("--no-vulkan", action="store_true", help="the CPU engines only")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    clip = np.stack([anime_frame(height, width, seed=i) for i in range(args.frames)])
    print(f"{width}x{height}, median of {args.rounds} alternating rounds of {args.frames} frames, model only")
    print(f"CPU: {device_label('cpu')}; Vulkan: {', '.join(d.label for d in vulkan_devices()) or 'none'}")
    print()
    print("| model | engine | s/frame | vs torch | PSNR vs torch fp32 (dB) |")
    print("|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        rows = bench_model(name, clip, args.rounds, not args.no_vulkan)
        torch_seconds = rows[0][1]
        for label, seconds, quality in rows:
            print(f"| {name} | {label} | {seconds:.3f} | {torch_seconds / seconds:.2f}x | {quality:.1f} |", flush=True)


if __name__ == "__main__":
    main()

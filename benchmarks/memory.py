"""Peak memory of one frame through the engine, for several tile sizes, each in a fresh process.

    python benchmarks/memory.py [--preset 2x-conservative] [--size 1920x1080] [--tiles 0,256]
        [--device cpu] [--precision fp32] [--state-memory none,0] [--repeat 1]

Reports the peak resident set size of the child (ru_maxrss), the model and PyTorch included,
on CUDA the peak allocated GPU memory, and the median time of `--repeat` upscales of the frame.
`--size` may name several sizes (`256x192,512x384`): then, for each tile size, the values per
input pixel between each two sizes follow (a CPU run: peak RSS difference) / (pixel difference) / (bytes
a value), what ModelDescriptor.activations_per_pixel holds, the process's own memory cancelled.
`--state-memory`: the bytes tile states may hold in memory before they spill to a temporary
file (0: all of them spill; `none`: never; `auto`: the engine's own choice).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = """
import json, resource, statistics, sys, time, torch
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.models.loader import load_model
from remaster.core.presets import get_preset
from remaster.media.testcard import photo_frame
preset, w, h, tile, device, precision, state_memory, repeat = sys.argv[1:9]
frame = photo_frame(int(h), int(w))[None]
budget = {"auto": None, "none": 1 << 62}.get(state_memory)
budget = int(state_memory) if budget is None and state_memory != "auto" else budget
up = TorchUpscaler(load_model(get_preset(preset).model), EngineSettings(device, precision, tile, state_memory=budget))
times = []
for _ in range(int(repeat)):
    start = time.perf_counter()
    up.upscale(frame)
    times.append(time.perf_counter() - start)
gpu = torch.cuda.max_memory_allocated() if up.device.type == "cuda" else 0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
states = up.kept_state_bytes
print(json.dumps({"gpu_peak": gpu, "rss_kib": rss, "seconds": statistics.median(times), "states": states}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2x-conservative")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--tiles", default="0,256")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--state-memory", default="auto", help="comma-separated: auto, none, 0 or bytes")
    parser.add_argument("--repeat", type=int, default=1, help="upscales of the frame to take the median time of")
    args = parser.parse_args()
    sizes, tiles, state_memories = args.size.split(","), args.tiles.split(","), args.state_memory.split(",")
    peaks = {}  # peak RSS in KiB by (size, tile, state memory)
    for size in sizes:
        width, height = size.split("x")
        print(f"{args.preset}, one {size} frame, {args.device} {args.precision}")
        for tile in tiles:
            for state_memory in state_memories:
                peaks[size, tile, state_memory] = run_child(args, width, height, tile, state_memory)
    value_bytes = {"fp32": 4, "bf16": 2, "fp16": 2}[args.precision]
    for tile in tiles:
        for state_memory in state_memories:
            for small, large in zip(sizes, sizes[1:], strict=False):
                pixels = [int(w) * int(h) for w, h in (s.split("x") for s in (small, large))]
                grown = (peaks[large, tile, state_memory] - peaks[small, tile, state_memory]) * 1024
                per_pixel = grown / (pixels[1] - pixels[0]) / value_bytes
                print(f"  tile {tile:>4}, {small} -> {large}: {per_pixel:6.0f} values per input pixel")


def run_child(args: argparse.Namespace, width: str, height: str, tile: str, state_memory: str) -> int:
    """One frame in a fresh process: prints its line, returns its peak RSS in KiB."""
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", CHILD, args.preset, width, height, tile, args.device, args.precision]
        + [state_memory, str(args.repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    child = json.loads(run.stdout.strip().splitlines()[-1])
    peak_kib, gpu = child["rss_kib"], child["gpu_peak"]
    line = f"  tile {tile:>4}, state memory {state_memory:>5}: peak RSS {peak_kib / 1024**2:6.2f} GiB"
    if gpu:
        line += f", peak GPU {gpu / 1024**3:6.2f} GiB"
    line += f", tile states {child['states'] / 1024**3:5.2f} GiB"
    line += f", upscale {child['seconds']:6.1f} s (median of {args.repeat})"
    print(line + f", process {time.perf_counter() - start:6.1f} s")
    return peak_kib


if __name__ == "__main__":
    main()

"""Peak memory of one frame through the engine, for several tile sizes, each in a fresh process.

    python benchmarks/memory.py [--preset 2x-conservative] [--size 1920x1080] [--tiles 0,256]
        [--device cpu] [--precision fp32]

Reports the peak resident set size of the child (ru_maxrss), the model and PyTorch included,
and on CUDA the peak allocated GPU memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = """
import json, resource, sys, torch
from remaster.engine.upscaler import EngineSettings, Upscaler
from remaster.models.loader import load_model
from remaster.presets import get_preset
from remaster.testcard import photo_frame
preset, w, h, tile, device, precision = sys.argv[1:7]
frame = photo_frame(int(h), int(w))[None]
up = Upscaler(load_model(get_preset(preset).model), EngineSettings(device, precision, tile))
up.upscale(frame)
gpu = torch.cuda.max_memory_allocated() if up.device.type == "cuda" else 0
print(json.dumps({"gpu_peak": gpu, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2x-conservative")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--tiles", default="0,256")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    width, height = args.size.split("x")
    print(f"{args.preset}, one {args.size} frame, {args.device} {args.precision}")
    for tile in args.tiles.split(","):
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", CHILD, args.preset, width, height, tile, args.device, args.precision],
            check=True,
            capture_output=True,
            text=True,
        )
        child = json.loads(run.stdout.strip().splitlines()[-1])
        peak_kib, gpu = child["rss_kib"], child["gpu_peak"]
        line = f"  tile {tile:>4}: peak RSS {peak_kib / 1024**2:6.2f} GiB"
        if gpu:
            line += f", peak GPU {gpu / 1024**3:6.2f} GiB"
        print(line + f", {time.perf_counter() - start:6.1f} s")


if __name__ == "__main__":
    main()

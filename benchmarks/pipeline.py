"""End-to-end frame rate of the video job against the model alone, and its peak memory.

    python benchmarks/pipeline.py [--preset 2x-conservative] [--size 640x480] [--seconds 1,2]
        [--rounds 2] [--precision auto]

For each round: `remaster bench`'s model-only measurement (same preset, size and precision,
in this process), then the whole `remaster EPISODE -o OUT` command in a child process, on a
generated episode of each length. Reports the median fps of both, their ratio, and the child's
peak RSS per length: memory must not grow with the length of the video.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from remaster.bench.measure import run_bench
from remaster.core.presets import get_preset
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.engines.device import precision_name, resolve_device, resolve_precision
from remaster.models.fidelity import auto_bf16


def run_pipeline(episode: Path, output: Path, preset: str, precision: str) -> tuple[float, int]:
    """fps of the frames computed, from the run's own summary, and the child's peak RSS in KiB."""
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), "--preset", preset]
    # Reuse off: every frame goes through the model, as in the model-only measurement.
    command += ["--precision", precision, "--reuse", "off", "--overwrite", "--json-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"remaster failed ({status}): {out[-500:]}")
    done = [json.loads(line) for line in out.splitlines() if '"done"' in line][-1]
    return done["fps"], usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="2x-conservative")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--seconds", default="1,2", help="episode lengths, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    lengths = [float(s) for s in args.seconds.split(",")]
    device = resolve_device("auto")
    model = get_preset(args.preset).model
    name = precision_name(resolve_precision(args.precision, device, auto_bf16(model)))

    model_fps, pipeline_fps, rss = [], {s: [] for s in lengths}, {s: [] for s in lengths}
    with tempfile.TemporaryDirectory() as tmp:
        episodes = {
            s: make_episode(Path(tmp) / f"ep{s:g}.mkv", EpisodeSpec(width=width, height=height, seconds=s))
            for s in lengths
        }
        for _ in range(args.rounds):
            row = next(r for r in run_bench(model, width, height, 5, "auto", "auto") if r.precision == name)
            model_fps.append(1 / row.seconds_per_frame)
            for s, episode in episodes.items():
                fps, peak = run_pipeline(episode, Path(tmp) / "out.mkv", args.preset, name)
                pipeline_fps[s].append(fps)
                rss[s].append(peak)
    model_median = statistics.median(model_fps)
    print(f"{args.preset}, {width}x{height}, {name}, {device.type}, {args.rounds} rounds")
    print(f"model only (remaster bench): {model_median:.3f} fps  [{', '.join(f'{f:.3f}' for f in model_fps)}]")
    for s in lengths:
        median = statistics.median(pipeline_fps[s])
        print(
            f"end to end, {s:g} s episode: {median:.3f} fps  [{', '.join(f'{f:.3f}' for f in pipeline_fps[s])}]  "
            f"ratio {median / model_median:.2f}  peak RSS {max(rss[s]) / 2**20:.2f} GiB"
        )


if __name__ == "__main__":
    main()

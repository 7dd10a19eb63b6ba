"""Start-up: how long `remaster image` takes beyond the upscale time it reports, and a short
video's fixed cost beyond the work its stages report.

    python benchmarks/startup.py                      # the installed remaster, 3 runs each
    python benchmarks/startup.py --tree /work/main --tree .   # two checkouts side by side

Each run is a fresh process, as a user's is. `remaster image` on one 480x360 frame: wall time
minus the time the command reports ("1 upscaled, 0 failed, X s": reading, the model and writing),
i.e. what the user waits for before the first frame and after the last. The video: a 72-frame
160x120 episode with `--reuse off --json-progress`: wall time minus the job's own `seconds`.
With several trees the runs alternate (A, B, A, B, ...), so that a busy machine weighs on each
alike; the table gives medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_IMAGE_SUMMARY = re.compile(r"(\d+) upscaled, (\d+) failed, ([\d.]+) s")


def _run(tree: Path | None, args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())
    t0 = time.perf_counter()
    # Run from the tree: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH.
    command = [sys.executable, "-m", "remaster", *args]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"remaster {' '.join(args)} failed: {run.stderr.strip()}")
    return wall, run


def image_overhead(tree: Path | None, picture: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    wall, run = _run(tree, ["image", str(picture), "-o", str(out), "--preset", "2x-conservative", "--device", "cpu"])
    reported = float(_IMAGE_SUMMARY.search(run.stderr).group(3))
    return wall - reported


def video_overhead(tree: Path | None, episode: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    args = [str(episode), "-o", str(out), "--codec", "x264", "--reuse", "off", "--device", "cpu", "--json-progress"]
    wall, run = _run(tree, args)
    done = next(e for e in map(json.loads, run.stdout.splitlines()) if e["event"] == "done")
    return wall - done["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to run (PYTHONPATH); repeat to compare")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-video", action="store_true", help="only the picture")
    args = parser.parse_args()
    trees: list[Path | None] = args.tree or [None]
    from remaster.demo.samples import EpisodeSpec, make_episode
    from remaster.media.imagefiles import write_image
    from remaster.media.testcard import anime_frame

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        picture = work / "frame.png"
        write_image(picture, anime_frame(360, 480, seed=0))
        episode = make_episode(work / "ep.mkv", EpisodeSpec(width=160, height=120, seconds=3.0, gop_seconds=0.5))
        _run(trees[0], ["image", str(picture), "-o", str(work / "warm.png")])  # the page cache, the weights' cache
        image: dict[int, list[float]] = {i: [] for i in range(len(trees))}
        video: dict[int, list[float]] = {i: [] for i in range(len(trees))}
        for _ in range(args.runs):
            for i, tree in enumerate(trees):
                image[i].append(image_overhead(tree, picture, work / f"out{i}.png"))
                if not args.no_video:
                    video[i].append(video_overhead(tree, episode, work / f"out{i}.mkv"))
    print(f"{'tree':<30} {'image: wall - reported':>24} {'video: wall - job':>18}   (medians of {args.runs}, s)")
    for i, tree in enumerate(trees):
        video_cell = f"{statistics.median(video[i]):18.2f}" if video[i] else f"{'-':>18}"
        print(f"{str(tree or 'installed'):<30} {statistics.median(image[i]):24.2f} {video_cell}")


if __name__ == "__main__":
    main()

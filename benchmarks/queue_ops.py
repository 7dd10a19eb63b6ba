"""How long each queue operation takes on a queue of 10,000 jobs; each must stay under 100 ms.

    python benchmarks/queue_ops.py [--jobs 10000] [--runs 9]

Fills a queue file with --jobs jobs in one transaction, then runs each operation --runs times and
prints the median and the slowest. The user's actions (add, status --json, retry, remove, pause,
resume, log) run as `remaster queue ...` runs them, in this process: opening the file, parsing,
printing (to /dev/null) included; Python's own start-up is not, and is measured once on its own.
What a worker does between jobs and during one (claim, heartbeat) runs on an open store, as a
worker holds its connection. Exits with status 1 when an operation's median is 100 ms or more.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from remaster.commands import queue as command
from remaster.scaleout.queue.store import Ending, JobSpec, Progress, QueueStore

LIMIT_MS = 100.0
OPTIONS = ("--segment-seconds", "0.25", "--codec", "x264")


def timed(action: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    action(*args)
    return (time.perf_counter() - start) * 1000


def quietly(argv: list[str]) -> None:
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        if command.main(argv) != 0:
            raise SystemExit(f"remaster queue {' '.join(argv)} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    runs = args.runs

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        queue = folder / "queue.sqlite"
        q = ["--queue", str(queue)]
        specs = [
            JobSpec(f"/videos/ep{n:05d}.mkv", f"/out/ep{n:05d}.2x-conservative.mkv", "2x-conservative", "/", OPTIONS)
            for n in range(args.jobs)
        ]
        store = QueueStore(queue)
        fill_ms = timed(store.add, specs)

        # Jobs in the states the user's actions need, made outside the timings.
        failed = []
        for _ in range(runs):
            claim = store.claim("bench-setup", 30, 0)
            store.finish(claim, Ending("failed", "failed", failure=True, exit_code=1, error="boom", log="x\n" * 100))
            failed.append(claim.job.id)
        queued = [job.id for job in store.jobs()[-3 * runs :]]
        to_remove, to_pause = queued[:runs], queued[runs : 2 * runs]
        inputs = []
        for n in range(runs):
            inputs.append(folder / f"new{n}.mkv")
            inputs[-1].write_bytes(b"not probed at add time")

        results: dict[str, list[float]] = {name: [] for name in
                                           ("add one", "status --json (all)", "claim", "heartbeat", "retry",
                                            "remove", "pause", "resume", "log")}  # fmt: skip
        claim = store.claim("bench-worker", 30, 2)
        for i in range(runs):
            add = ["add", str(inputs[i]), "--preset", "2x-conservative", "-o", str(folder / "out"), *q, "--", *OPTIONS]
            progress = Progress(pid=1234, frames_done=i, frames_total=34526, fps=3.4, eta_seconds=9000.0)
            results["add one"].append(timed(quietly, add))
            results["status --json (all)"].append(timed(quietly, ["status", "--json", *q]))
            results["claim"].append(timed(store.claim, "bench-worker", 30, 2))
            results["heartbeat"].append(timed(store.heartbeat, claim, 30, progress))
            results["retry"].append(timed(quietly, ["retry", str(failed[i]), *q]))
            results["remove"].append(timed(quietly, ["remove", str(to_remove[i]), *q]))
            results["pause"].append(timed(quietly, ["pause", str(to_pause[i]), *q]))
            results["resume"].append(timed(quietly, ["resume", str(to_pause[i]), *q]))
            results["log"].append(timed(quietly, ["log", str(failed[i]), *q]))
        jobs = len(store.jobs())
        store.close()

        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "remaster.scaleout.queue", "status", "--json", *q], check=True, capture_output=True
        )
        process_ms = (time.perf_counter() - start) * 1000
        table_ms = timed(quietly, ["status", *q])

    table = Table(title=f"queue of {jobs} jobs: median of {runs} runs (ms)")
    for column in ("operation", "median", "slowest", f"< {LIMIT_MS:g} ms"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    slow = []
    for name, times in results.items():
        median = statistics.median(times)
        if median >= LIMIT_MS:
            slow.append(name)
        table.add_row(name, f"{median:.2f}", f"{max(times):.2f}", "yes" if median < LIMIT_MS else "NO")
    console = Console()
    console.print(table)
    console.print(
        f"filling {args.jobs} jobs in one transaction: {fill_ms:.0f} ms; for scale, not limited: "
        f"`python -m remaster.scaleout.queue status --json` as a process {process_ms:.0f} ms, "
        f"the rich table (the first 100 jobs) {table_ms:.0f} ms",
        highlight=False,
    )
    if slow:
        raise SystemExit(f"over {LIMIT_MS:g} ms: {', '.join(slow)}")


if __name__ == "__main__":
    main()

"""What each `remaster queue` action does and prints (rich for people, JSON for scripts); the options
are read in `remaster.commands.queue`."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shlex
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from remaster.core.errors import EXIT_FAILURE, EXIT_INTERRUPTED, RemasterError, UsageError
from remaster.core.outputs import atomic_output
from remaster.core.processes import die_with_parent
from remaster.scaleout.queue.live import RunningJobs
from remaster.scaleout.queue.plan import plan_jobs
from remaster.scaleout.queue.store import (
    TABLE_ROWS,
    Job,
    Progress,
    QueueStore,
    database_error,
    import_jobs,
    job_record,
    salvage_jobs,
)
from remaster.scaleout.queue.worker import WorkerOptions, new_worker_id, serve

ERROR_CHARS = 60
RELAY_SECONDS = 0.25  # how often `run --workers N` looks whether its workers are still alive
_STATE_STYLES = {"running": "cyan", "queued": "default", "paused": "yellow", "failed": "red", "done": "green"}


# -- add, status, log ---------------------------------------------------------------------------


def add(
    path: Path, paths: Sequence[Path], preset: str, folder: Path | None, options: Sequence[str], priority: int
) -> int:
    specs = plan_jobs(paths, preset, folder, options, priority)
    with QueueStore(path) as store:
        jobs = store.add(specs)
    for job in jobs:
        print(f"queued job {job.id}: {job.input} -> {job.output}")
    return 0


def status(path: Path, as_json: bool, show_all: bool) -> int:
    if not path.exists():  # nothing queued yet: say so without making a queue file
        print("[]" if as_json else f"no jobs in {path}")
        return 0
    with QueueStore(path, create=False) as store:
        if as_json:
            print(store.jobs_json())
            return 0
        # A long queue is cut short: a table of 10,000 rows takes rich seconds.
        jobs = store.by_urgency(None if show_all else TABLE_ROWS)
        counts = store.counts()
    if not jobs:
        print(f"no jobs in {path}")
        return 0
    table = Table(title=f"remaster queue: {path}", title_justify="left")
    for column in ("id", "state", "done", "fps", "ETA", "runs", "job", "error"):
        table.add_column(column, justify="right" if column in ("id", "done", "fps", "ETA", "runs") else "left")
    for job in jobs:
        progress = job.progress
        table.add_row(
            str(job.id),
            f"[{_STATE_STYLES[job.state]}]{job.state}[/]",
            "" if progress is None else f"{progress:.0%}",
            f"{job.fps:.2f}" if job.fps and job.state == "running" else "",
            _duration(job.eta_seconds) if job.state == "running" else "",
            str(job.attempts),
            escape(_names(job)),
            escape(_shorten(job.error)) if job.state != "done" else "",
        )
    table.caption = ", ".join(f"{counts[state]} {state}" for state in _STATE_STYLES if state in counts)
    if len(jobs) < sum(counts.values()):
        table.caption += f"; {sum(counts.values()) - len(jobs)} more not shown (--all, or --json)"
    Console().print(table)
    return 0


def change(path: Path, action: str, ids: Sequence[int]) -> int:
    """retry, remove, pause or resume the jobs, saying what each one is now."""
    with QueueStore(path, create=False) as store:
        changes = {"retry": store.retry, "remove": store.remove, "pause": store.pause, "resume": store.resume}
        jobs = changes[action](ids)
    for job in jobs:
        print(f"job {job.id}: {'removed' if action == 'remove' else job.state}")
    return 0


def _names(job: Job) -> str:
    """`a.mkv -> a.2x.mkv` beside the input, `a.mkv -> out/a.2x.mkv` in another folder."""
    source, output = Path(job.input), Path(job.output)
    shown = output.name if output.parent == source.parent else f"{output.parent.name}/{output.name}"
    return f"{source.name} -> {shown}"


def _shorten(text: str | None, length: int = ERROR_CHARS) -> str:
    """The start of an error, for the table: `queue log ID` has all of it."""
    text = text or ""
    return text if len(text) <= length else text[: length - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp is not None else "-"


def log(path: Path, job_id: int) -> int:
    with QueueStore(path, create=False) as store:
        job = store.job(job_id)
        runs = store.claims(job_id)
    print(f"job {job.id}: {job.input} -> {job.output}")
    print(f"preset {job.preset}, options: {shlex.join(job.options) or 'none'}, priority {job.priority}, in {job.cwd}")
    print(f"{job.state}: {_count(job.attempts, 'run')}, {_count(job.failures, 'failure')}", end="")
    print(f"; added {_when(job.added_at)}", end="")
    print(f", finished {_when(job.finished_at)}" if job.finished_at else "")
    if job.error and job.state != "done":
        print(f"error: {job.error}")
    for number, run in enumerate(runs, 1):
        took = f" ({run.ended_at - run.started_at:.1f} s)" if run.ended_at else ""
        code = f", exit {run.exit_code}" if run.exit_code is not None else ""
        print(f"\nrun {number}: {_when(run.started_at)} -> {_when(run.ended_at)}{took} by {run.worker_id}")
        print(f"  {run.outcome}{code}" + (f": {run.error}" if run.error else ""))
        for line in (run.log or "").splitlines():
            print(f"  | {line}")
    return 0


# -- export, import ------------------------------------------------------------------------------


def export(path: Path, output: Path | None) -> int:
    salvage = salvage_jobs(path)
    text = json.dumps(salvage.jobs, indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        try:  # whole or not at all, and never over a file the user has (replace=False)
            with atomic_output(output, replace=False) as staged:
                staged.write_text(text)
        except FileExistsError:
            raise UsageError(f"{output}: exists; export writes a new file") from None
        except OSError as exc:
            raise UsageError(f"{output}: cannot write ({exc.strerror})") from None
    where = "" if output is None else f" to {output}"
    note = f"exported {_count(len(salvage.jobs), 'job')} from {path}{where}"
    if salvage.unreadable:
        note += f"; unreadable: {_ids(salvage.unreadable)}"
    if salvage.missing:
        note += f"; not found in the damaged file (removed earlier, or lost on a damaged page): {_ids(salvage.missing)}"
    print(note, file=sys.stderr)
    return 0


def _ids(ids: list[int], shown: int = 10) -> str:
    """`3 jobs (id 4, 5, 9)`, the first `shown` ids of a long list."""
    listed = ", ".join(map(str, ids[:shown])) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    return f"{_count(len(ids), 'job')} (id {listed})"


def import_from(path: Path, source: Path) -> int:
    try:
        records = json.loads(source.read_text())
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{source}: not a JSON list of jobs ({exc})") from None
    if not isinstance(records, list):
        raise UsageError(f"{source}: not a JSON list of jobs (from `remaster queue export` or `status --json`)")
    jobs = []
    for number, record in enumerate(records, 1):
        try:
            if not isinstance(record, dict):
                raise ValueError("not an object")
            jobs.append(job_record(record))
        except ValueError as exc:
            raise UsageError(f"{source}: job {number} of the list: {exc}") from None
    count = import_jobs(path, jobs)
    print(f"imported {_count(count, 'job')} into {path}")
    return 0


# -- run ----------------------------------------------------------------------------------------


def run(path: Path, workers: int, options: WorkerOptions, devices: Sequence[str | None]) -> int:
    """`workers` workers, each with the options; the devices go round them. The running jobs'
    progress is shown live below the workers' lines (queue/live.py)."""
    plans = [(new_worker_id(), replace(options, device=devices[i % len(devices)])) for i in range(workers)]
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    with QueueStore(path) as store:
        with RunningJobs(console) as display:
            if workers == 1:
                interrupted = serve(store, plans[0][1], plans[0][0], display.say, display.shown())
            else:
                interrupted = _run_processes(path, plans, display)
        return _summary(store, [worker_id for worker_id, _ in plans], interrupted)


def _worker_process(
    path: Path, options: WorkerOptions, worker_id: str, label: str, parent: int, messages: multiprocessing.Queue
) -> None:
    """One of several workers. What it says and its job's progress go to the parent through
    `messages`, which shows them all on one display."""
    # SIGTERM, not SIGKILL: this worker is alive and can stop its child and requeue its job.
    die_with_parent(signal.SIGTERM, parent)

    def say(line: str) -> None:
        messages.put(("say", f"{label}{line}"))

    def shown(job: Job, progress: Progress | None) -> None:
        messages.put(("shown", label, job, progress))

    try:
        with QueueStore(path) as store:
            interrupted = serve(store, options, worker_id, say, shown)
    except sqlite3.Error as exc:
        print(f"remaster: error: {database_error(path, exc)}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except RemasterError as exc:
        print(f"remaster: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    finally:
        messages.close()
        messages.join_thread()  # everything said reaches the parent before this process ends
    sys.exit(EXIT_INTERRUPTED if interrupted else 0)


def _run_processes(path: Path, plans: list[tuple[str, WorkerOptions]], display: RunningJobs) -> bool:
    """--workers N: N worker processes, so that each one's child dies with it (the kernel's parent-death
    signal follows the thread that started a child: workers in threads would not have that)."""
    context = multiprocessing.get_context("spawn")  # no fork: nothing of this process's state to inherit
    messages = context.Queue()
    processes = [
        context.Process(target=_worker_process, args=(path, options, worker_id, f"[{i}] ", os.getpid(), messages))
        for i, (worker_id, options) in enumerate(plans, 1)
    ]
    stopped = False

    def stop(signum: int, frame: object) -> None:  # a Ctrl-C reaches them too; a `kill` only reaches us
        nonlocal stopped
        stopped = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            if not stopped:  # a signal while they start: start no more
                process.start()
        _relay(messages, [process for process in processes if process.pid is not None], display)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stopped or any(process.exitcode == EXIT_INTERRUPTED for process in processes)


def _relay(messages: multiprocessing.Queue, processes: list[BaseProcess], display: RunningJobs) -> None:
    """Show what the workers say and their jobs' progress until every one of them has ended."""
    shown: dict[str, Callable[[Job, Progress | None], None]] = {}
    while True:
        running = any(process.is_alive() for process in processes)
        try:
            message = messages.get(timeout=RELAY_SECONDS)
        except queue.Empty:
            if running:
                continue
            break
        if message[0] == "say":
            display.say(message[1])
        else:
            _, label, job, progress = message
            shown.setdefault(label, display.shown(label))(job, progress)
    for process in processes:
        process.join()


def _summary(store: QueueStore, worker_ids: list[str], interrupted: bool) -> int:
    """What this run did, by each job's state now: done, failed (with why), or back in the queue."""
    touched = list(dict.fromkeys(run.job_id for run in store.claims_by(worker_ids)))
    jobs = store.jobs(touched)
    done = [job for job in jobs if job.state == "done"]
    failed = [job for job in jobs if job.state == "failed"]
    other = [job for job in jobs if job.state not in ("done", "failed")]
    console = Console(highlight=False, soft_wrap=True)
    head = "stopped" if interrupted else "nothing left to run"
    console.print(f"{head}: {len(done)} done, {len(failed)} failed" + (f", {len(other)} not finished" if other else ""))
    for job in failed:
        console.print(f"  failed: job {job.id} {escape(job.input)}: {escape(job.error or '')}")
    for job in other:
        console.print(f"  {job.state}: job {job.id} {escape(job.input)}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if failed else 0

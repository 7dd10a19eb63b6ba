"""Run one job: the ordinary `remaster` command in a child process, watched through its JSON lines.

A child process, not a function call, so that a decoder crash, a CUDA fault or the OOM killer takes
down that job only. The child is the normal video command, so it resumes from its own segment
checkpoints when a job runs again.

`run_job` knows nothing of the queue file: it takes a job and a `report` callback and gives back an
`Outcome`. A worker (worker.py) wires it to the store; a Ray runner could call it inside a task.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from remaster.core.errors import EXIT_FAILURE
from remaster.core.processes import dying_with_this_process
from remaster.scaleout.queue.store import Job, Progress

TICK_SECONDS = 0.25  # how often `report` is called: bounds how late a stop or a lost lease is noticed
STOP_GRACE_SECONDS = 30.0  # after SIGINT, how long the child may take to stop before SIGKILL
LOG_LINES = 100  # the stderr tail kept per run
LOG_LINE_CHARS = 500
ERROR_PREFIX = "remaster: error: "


@dataclass(frozen=True)
class Outcome:
    """How the child ended. `returncode` is Popen's: negative for a signal. `stopped` is set when
    the child was stopped on purpose (the worker is stopping, or the job is no longer ours)."""

    returncode: int
    error: str | None
    log: str
    progress: Progress
    stopped: bool


def child_command(job: Job, worker_args: Sequence[str] = ()) -> list[str]:
    """The command a job runs. The worker's own options (--device, --ray) go last, so they win
    over a job's."""
    command = [sys.executable, "-m", "remaster", job.input, "-o", job.output, "--preset", job.preset, *job.options]
    return [*command, *worker_args, "--json-progress"]


def _describe(returncode: int, log: deque[str]) -> str | None:
    """The error to record: the child's own one-line error, the signal that killed it, or its last words."""
    if returncode == 0:
        return None
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    for line in reversed(log):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    last = next((line for line in reversed(log) if line.strip()), None)
    return f"exit code {returncode}" + (f": {last.strip()}" if last else "")


def _follow(event: dict, progress: Progress, log: deque[str]) -> None:
    kind = event.get("event")
    if kind == "status":
        progress.status = event.get("message")
    elif kind == "start":
        progress.frames_total = event.get("frames")
        progress.frames_done = progress.frames_done or 0
        if event.get("reused"):
            log.append(f"resuming: {len(event['reused'])} of {event.get('segments')} segments reused")
    elif kind == "progress":
        progress.status = None  # frames flow: the bar says the rest
        progress.frames_done = event.get("frames_done")
        progress.frames_total = event.get("frames_total")
        progress.fps = event.get("fps")
        progress.eta_seconds = event.get("eta_seconds")
    elif kind == "done":
        progress.status = None
        progress.frames_done = progress.frames_total = event.get("frames")
        progress.fps = event.get("fps")
        progress.eta_seconds = 0.0
    elif kind == "note":  # dropped or converted streams: worth keeping with the job
        log.append(f"note: {event.get('message')}"[:LOG_LINE_CHARS])


def run_job(
    job: Job,
    worker_args: Sequence[str],
    report: Callable[[Progress], bool],
    should_stop: Callable[[], bool],
) -> Outcome:
    """Run `job` to its end. `report(progress)` is called when the child starts and then every
    TICK_SECONDS; it returns False when the job is no longer this worker's, and the child is then
    stopped, as it is when `should_stop()` turns true: SIGINT, so that it keeps its finished segments."""
    try:
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        # SIGKILL the child when its worker dies: a worker that dies without stopping its child was
        # itself killed (SIGKILL, OOM), and the child must not run on unwatched, or a worker that takes
        # the job over would run it twice. A killed child loses only its segment in progress.
        child = subprocess.Popen(
            dying_with_this_process(child_command(job, worker_args), signal.SIGKILL),
            cwd=job.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own session: a Ctrl-C in the worker's terminal reaches the worker only, which then stops
            # the child once, and the child's own helpers (ffmpeg) can be killed with it as a group.
            start_new_session=True,
        )
    except OSError as exc:  # a folder gone, no more processes: a failure like any other, and retried
        return Outcome(EXIT_FAILURE, f"could not start remaster: {exc}", "", Progress(), False)
    progress = Progress(pid=child.pid)
    log: deque[str] = deque(maxlen=LOG_LINES)
    partial = {child.stdout.fileno(): b"", child.stderr.fileno(): b""}
    stopping_since: float | None = None

    def take(fd: int, data: bytes) -> None:
        *lines, partial[fd] = (partial[fd] + data).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if fd == child.stdout.fileno() and line.startswith("{"):
                try:
                    _follow(json.loads(line), progress, log)
                    continue
                except json.JSONDecodeError:
                    pass
            if line:
                log.append(line[:LOG_LINE_CHARS])

    try:
        with selectors.DefaultSelector() as selector:
            for stream in (child.stdout, child.stderr):
                os.set_blocking(stream.fileno(), False)
                selector.register(stream.fileno(), selectors.EVENT_READ)
            while True:
                # Heartbeats go on while the child stops, so that no other worker takes the job meanwhile.
                ours = report(progress)
                if stopping_since is None and (not ours or should_stop()):
                    child.send_signal(signal.SIGINT)
                    stopping_since = time.monotonic()
                elif stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_SECONDS:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                if child.poll() is not None:
                    break
                for key, _ in selector.select(TICK_SECONDS):
                    data = os.read(key.fd, 65536)
                    if data:
                        take(key.fd, data)
                    else:
                        selector.unregister(key.fd)
            for key in list(selector.get_map().values()):  # what the child wrote just before it exited
                while data := _read_more(key.fd):
                    take(key.fd, data)
            for fd, rest in partial.items():
                if rest:
                    take(fd, b"\n")
    finally:
        if child.poll() is None:  # the worker itself failed (a bug, a broken queue file): never leave it running
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        child.stdout.close()
        child.stderr.close()
    error = _describe(child.returncode, log)
    return Outcome(child.returncode, error, "\n".join(log), progress, stopping_since is not None)


def _read_more(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:  # a helper of the child still holds the pipe open, with nothing in it
        return b""

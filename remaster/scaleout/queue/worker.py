"""A worker: claim a job, run it (child.py) while renewing its lease, record how it ended, repeat.

Retries: a run that fails (non-zero exit, killed by a signal, or its worker lost) puts the job back
in the queue until it has failed `retries` + 1 times. Bad input (exit code 2) is retried too: an
overnight queue often holds files still being copied or downloaded when they were added, a work
folder may be locked by a run about to end, and a retry of a file that is really damaged costs
seconds, since the finished segments are kept.
A run stopped on purpose (Ctrl-C or SIGTERM to the worker) is no failure: the job goes back to the
queue as it was, and the next run resumes from its finished segments.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path

from remaster.scaleout.queue.child import Outcome, run_job
from remaster.scaleout.queue.store import Claim, Ending, Job, JobState, Progress, QueueStore

PROGRESS_SECONDS = 1.0  # at most one progress write a second per job: status is for people
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class WorkerOptions:
    device: str | None = None  # passed to every child as --device; None: the job's own or auto
    retries: int = 2
    lease_seconds: float = 30.0  # a worker silent this long is taken for dead and its job taken over
    poll_seconds: float = 2.0  # how often an idle worker looks for work
    watch: bool = False  # wait for new jobs instead of returning when the queue is empty
    ray: str | None = None  # spread each job's segments over this Ray cluster (the job's --ray)
    ray_gpus: float | None = None

    def child_args(self) -> list[str]:
        """The options every job this worker runs gets, after its own."""
        args = ["--device", self.device] if self.device else []
        args += ["--ray", self.ray] if self.ray else []
        args += ["--ray-gpus", f"{self.ray_gpus:g}"] if self.ray_gpus is not None else []
        return args


def new_worker_id() -> str:
    """host:pid:random. The random part tells apart workers in containers that share a host name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def decide(outcome: Outcome, job: Job, ours: bool, retries: int) -> Ending:
    """What a run's end means for its job (`job` as claimed; `ours`: the lease was never lost)."""
    common = {"exit_code": outcome.returncode, "error": outcome.error, "log": outcome.log, "progress": outcome.progress}
    if outcome.returncode == 0:  # the output is whole: done, unless another worker has the job now
        return Ending("done", JobState.DONE, **common)
    if not ours:  # paused, removed or taken over meanwhile: whoever has it now decides
        return Ending("stopped", None, **common)
    if outcome.stopped:
        return Ending("interrupted", JobState.QUEUED, **common)
    if job.failures + 1 <= retries:
        return Ending("retry", JobState.QUEUED, failure=True, **common)
    return Ending("failed", JobState.FAILED, failure=True, **common)


class _Lease:
    """The `report` callback of run_job: renews the claim's lease every lease/4 seconds and writes
    progress at most once a second; remembers whether the job is still ours."""

    def __init__(self, store: QueueStore, claim: Claim, lease_seconds: float):
        self.store, self.claim, self.lease_seconds = store, claim, lease_seconds
        self.ours = True
        self._written_at = -math.inf
        self._written: tuple | None = None
        self._valid_until = time.monotonic() + lease_seconds

    def __call__(self, progress: Progress) -> bool:
        now = time.monotonic()
        since = now - self._written_at
        if since < self.lease_seconds / 4 and (astuple(progress) == self._written or since < PROGRESS_SECONDS):
            return self.ours
        try:
            self.ours = self.store.heartbeat(self.claim, self.lease_seconds, progress) and self.ours
        except sqlite3.OperationalError:
            # Locked past busy_timeout (a stuck writer, a slow disk): try again at the next tick, but
            # once the lease may have run out, another worker may have the job: stop ours.
            self.ours = self.ours and now < self._valid_until
            return self.ours
        self._written_at, self._written, self._valid_until = now, astuple(progress), now + self.lease_seconds
        return self.ours


class Worker:
    """Runs queued jobs one at a time until none is left (or, with `watch`, until stopped)."""

    def __init__(
        self,
        store: QueueStore,
        options: WorkerOptions,
        worker_id: str | None = None,
        say: Callable[[str], None] = lambda line: None,
        shown: Callable[[Job, Progress | None], None] = lambda job, progress: None,
    ):
        self.store = store
        self.options = options
        self.id = worker_id or new_worker_id()
        self.say = say
        self.shown = shown  # the running job's progress, each tick of its child; None once it ended
        self.stopping = False

    def request_stop(self) -> None:
        """Stop the running child (it keeps its finished segments), requeue its job, and return.
        Safe to call from a signal handler: it only sets a flag that the loops poll."""
        self.stopping = True

    def run(self) -> None:
        while not self.stopping:
            if self.run_one() is not None:
                continue
            # Nothing queued. A job running elsewhere may still come back (its worker may die), so wait
            # for it too; only an empty queue with nothing running ends the run.
            if not (self.options.watch or self.store.has_running()):
                return
            deadline = time.monotonic() + self.options.poll_seconds
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)

    def run_one(self) -> Ending | None:
        """Claim one job and run it to its end; None when nothing is queued."""
        if self.stopping:
            return None
        claim = self.store.claim(self.id, self.options.lease_seconds, self.options.retries, self._say_damaged)
        if claim is None:
            return None
        job = claim.job
        self.say(f"job {job.id} (run {job.attempts}): {job.input} -> {job.output}")
        started = time.monotonic()
        ending = self._already_written(job)
        if ending is None:
            lease = _Lease(self.store, claim, self.options.lease_seconds)

            def report(progress: Progress) -> bool:
                self.shown(job, progress)
                return lease(progress)

            try:
                outcome = run_job(job, self.options.child_args(), report, lambda: self.stopping)
            finally:
                self.shown(job, None)
            ending = decide(outcome, job, lease.ours, self.options.retries)
        self.store.finish(claim, ending)
        self.say(f"job {job.id}: {_describe(ending, time.monotonic() - started, job, self.options.retries)}")
        return ending

    def _say_damaged(self, job: Job) -> None:
        self.say(f"job {job.id}: failed: {job.error}")

    @staticmethod
    def _already_written(job: Job) -> Ending | None:
        """A run can write its output and end unrecorded: its worker killed or powered off in between,
        or its job paused or taken over just as it finished. Run again, the job would fail on the output
        in its way. `add` refused outputs that existed, and a child writes its output only once it is
        whole and verified, so an output written since the job was added is that earlier run's."""
        try:
            written = Path(job.output).stat().st_mtime
        except FileNotFoundError:
            return None
        if written < job.added_at:
            return None
        return Ending("done", JobState.DONE, exit_code=0, log="output already written by an earlier run: not run again")


def _describe(ending: Ending, seconds: float, job: Job, retries: int) -> str:
    if ending.outcome == "done":
        frames = ending.progress.frames_total
        return f"done in {seconds:.1f} s" + (f", {frames} frames" if frames else "")
    if ending.outcome == "retry":
        return f"{ending.error}; retry {job.failures + 1} of {retries}"
    if ending.outcome == "failed":
        return f"failed: {ending.error} ({job.failures + 1} failed runs)"
    if ending.outcome == "interrupted":
        return "stopped; back in the queue (its finished segments are kept)"
    return "paused, removed or taken over while running; stopped"


def serve(
    store: QueueStore,
    options: WorkerOptions,
    worker_id: str,
    say: Callable[[str], None],
    shown: Callable[[Job, Progress | None], None] = lambda job, progress: None,
) -> bool:
    """Run a worker in this process until the queue is empty; SIGINT or SIGTERM stops it cleanly.
    Returns True when it was stopped by a signal. `say` and `shown`: as for Worker."""
    worker = Worker(store, options, worker_id, say, shown)
    previous = {sig: signal.signal(sig, lambda signum, frame: worker.request_stop()) for sig in _STOP_SIGNALS}
    try:
        worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return worker.stopping

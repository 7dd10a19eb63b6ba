"""One episode's segments spread over several devices of this machine: `--device cuda:0,cuda:1`
or `--device all`.

This process plans the episode and holds its work folder, as a one-device run does. One worker
process per device (spawned: a fresh interpreter with its own CUDA context) loads the model once,
then takes the next segment still to do from a shared queue, computes it from the job's plan
(scaleout/tasks.py) and moves the file into the work folder; this process commits each segment as
a checkpoint as it comes back, and assembles the episode. A faster device simply takes more
segments. The output is the one-device run's: every worker runs the plan's one precision, and a
segment's frames do not depend on where the others are cut or computed.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import pickle
import queue
import signal
from dataclasses import replace
from pathlib import Path

from remaster.core.errors import RemasterError, UsageError
from remaster.scaleout.tasks import SegmentResult, commit_result
from remaster.video.pipeline import Job, Remasterer
from remaster.video.plan import JobPlan, VideoSettings
from remaster.video.progress import QuietProgress, Summary

POLL_SECONDS = 0.5  # how often a worker that died without a word (SIGKILL, the OOM killer) is noticed


def parse_devices(value: str) -> list[str] | None:
    """`cuda:0,cuda:1` or `all` (every CUDA device) -> the devices to spread over; None where
    `value` names one device (auto, cpu, cuda:N), which the engine takes as it is."""
    if value == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise UsageError("--device all: no CUDA GPU is available to PyTorch here")
        return [f"cuda:{i}" for i in range(count)] if count > 1 else None
    if "," not in value:
        return None
    devices = [name.strip() for name in value.split(",")]
    kinds = {name.split(":")[0] for name in devices}
    if "" in devices or "auto" in kinds or len(kinds) > 1:
        # One kind: every segment must run at the precision the plan resolved for that kind.
        raise UsageError(f"--device {value}: want devices of one kind, such as cuda:0,cuda:1")
    return devices


def remaster_on_devices(
    source: Path, output: Path, settings: VideoSettings, devices: list[str], progress: QuietProgress
) -> tuple[Summary, list[str]]:
    """Remaster one episode with a worker per device; returns the summary and, for each computed
    segment, the worker that computed it."""
    from remaster.engines.device import resolve_device

    for device in devices:
        resolve_device(device)  # each one checked before any work: an index past the last GPU
    remasterer = Remasterer(replace(settings, engine=replace(settings.engine, device=devices[0])), progress)
    job = remasterer.prepare(source, output)
    with remasterer.abandoned_on_failure(job):
        workers, computed, held = _compute_on_devices(job, devices, progress)
        summary = remasterer.finish(job, computed, held)
    return summary, workers


def _compute_on_devices(job: Job, devices: list[str], progress: QuietProgress) -> tuple[list[str], int, int]:
    context = multiprocessing.get_context("spawn")  # no fork: a CUDA context does not survive one
    tasks, results = context.Queue(), context.Queue()
    # Every worker loads its model, then all start together: the first one up would otherwise take
    # the first segments while the others are still starting, and the segments go more unevenly.
    ready = context.Barrier(len(devices))
    todo = job.todo
    for seg in todo:
        tasks.put(seg.index)
    for _ in devices:
        tasks.put(None)  # one end mark per worker
    shared = str(job.work.root)
    processes = [
        context.Process(
            target=_device_worker,
            args=(_on_device(job.plan, device), tasks, results, ready, shared, os.getpid()),
            name=f"remaster {device}",
            daemon=True,
        )
        for device in devices
    ]
    progress.status(f"computing the first segments on {', '.join(devices)}")  # until a whole one is back
    for process in processes:
        process.start()
    workers: list[str] = []
    computed = held = 0
    try:
        while len(workers) < len(todo):
            result = _next_result(results, dict(zip(processes, devices, strict=True)))
            commit_result(job, result, progress)
            computed, held = computed + result.computed, held + result.held
            workers.append(result.worker)
    finally:
        if len(workers) < len(todo):  # stopped early: the workers still computing go
            for process in processes:
                if process.is_alive():
                    process.terminate()  # SIGTERM: its segment in progress and private folder go (tasks.py)
        for process in processes:  # after its end mark, a worker leaves by itself
            process.join()
    return workers, computed, held


def _on_device(plan: JobPlan, device: str) -> JobPlan:
    return replace(plan, engine=replace(plan.engine, device=device))


def _next_result(results: multiprocessing.Queue, processes: dict) -> SegmentResult:
    """The next finished segment; a worker's failure raised here, a worker gone without a word named."""
    while True:
        try:
            kind, payload = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            for process, device in processes.items():
                if process.exitcode is not None and process.exitcode != 0:
                    raise RemasterError(f"the worker on {device} died (exit code {process.exitcode})") from None
            continue
        if kind == "failed":
            raise _unpickled(payload)
        return payload


def _device_worker(
    plan: JobPlan,
    tasks: multiprocessing.Queue,
    results: multiprocessing.Queue,
    ready: multiprocessing.synchronize.Barrier,
    shared: str,
    parent: int,
) -> None:
    """One device's worker: the model loaded once, then segments until the end mark."""
    from remaster.core.process_settings import apply_process_settings
    from remaster.core.processes import die_with_parent
    from remaster.engines.choice import make_upscaler
    from remaster.models.loader import load_model
    from remaster.scaleout.tasks import compute_segment

    die_with_parent(signal.SIGKILL, parent)  # a job process killed takes its workers along
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the job process's: it stops the workers
    apply_process_settings()  # SIGTERM as KeyboardInterrupt: the segment's private folder is removed
    try:
        upscaler = make_upscaler(load_model(plan.model), plan.engine)
        ready.wait()
        while (index := tasks.get()) is not None:
            results.put(("done", compute_segment(plan, index, shared, upscaler)))
    except KeyboardInterrupt:  # stopped by the job process (SIGTERM): it knows why
        return
    except Exception as exc:  # noqa: BLE001 - handed to the job process, which raises it
        results.put(("failed", _picklable(exc)))


def _unpickled(payload: bytes) -> BaseException:
    try:
        return pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - an exception class whose arguments do not come back
        return RemasterError(f"a worker failed, and its error could not be read back: {exc}")


def _picklable(exc: Exception) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that cannot cross processes: its words can
        return pickle.dumps(RemasterError(f"{type(exc).__name__}: {exc}"))

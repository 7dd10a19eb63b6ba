"""One episode's segments spread over several pipelines of this machine: several devices
(`--device cuda:0,cuda:1`, `--device all`), several pipelines on one device (`--device cuda:0*2`:
two, each with its own decoder, model and encoder on segments of its own, so that one slow
encoder does not starve the GPU), or as many as the first segment's stage shares call for
(`--device cuda:0*auto`).

This process plans the episode and holds its work folder, as a one-device run does. One worker
process per pipeline (spawned: a fresh interpreter with its own CUDA context) loads the model
once; this process hands each worker the next segment still to do as it becomes free, commits
each segment as a checkpoint as it comes back, and assembles the episode. A faster pipeline
simply takes more segments. A worker that dies (the OOM killer, a GPU fault) costs only its
segment in progress: it goes to another worker. The output is the one-device run's: every
worker runs the plan's one precision, and a segment's frames do not depend on where the others
are cut or computed.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import queue
import resource
import signal
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from remaster.core.errors import RemasterError, UsageError
from remaster.core.wording import counted
from remaster.scaleout.tasks import SegmentResult, commit_result
from remaster.video.pipeline import Job, Remasterer
from remaster.video.plan import JobPlan, VideoSettings
from remaster.video.progress import QuietProgress, Summary

POLL_SECONDS = 0.5  # how often a worker that died without a word (SIGKILL, the OOM killer) is noticed
# `*auto` starts at most this many pipelines on one device: past four, four x265 encoders share the
# CPU's cores with four decoders, and the issue that asked for pipelines (21) found one encoder
# keeping pace with a few 4K fps; a GPU run's benchmarks/gpu.py rows are what can move it.
MAX_PIPELINES = 4
# A segment whose worker died this many times fails the episode: it is the segment, not the worker.
DEATHS_PER_SEGMENT = 2


@dataclass(frozen=True)
class DeviceSpread:
    """Where an episode's segments run: a device name per pipeline to start, and whether more
    pipelines are started on a device once its first segment has measured the stages (`*auto`)."""

    pipelines: tuple[str, ...]
    auto: bool = False

    @property
    def label(self) -> str:
        return ", ".join(self.pipelines) + (" (more where the encoder waits on the model: *auto)" if self.auto else "")


def parse_devices(value: str) -> DeviceSpread | None:
    """`cuda:0,cuda:1`, `all` (every CUDA device), `cuda:0*2` (two pipelines on it), `cpu*2`,
    `cuda:0*auto`, or lists of these -> the pipelines to spread over; None where `value` names one
    device and one pipeline (auto, cpu, cuda:N), which the engine takes as it is."""
    pipelines: list[str] = []
    auto = False
    for item in value.split(","):
        name, star, count = (part.strip() for part in item.partition("*"))
        names = _every_cuda_device(value) if name == "all" else [name]
        if star and count == "auto":
            auto, count = True, "1"
        pipelines += [device for device in names for _ in range(_pipeline_count(count, value) if star else 1)]
    if len(pipelines) == 1 and not auto:
        return None  # one device, one pipeline: the engine's to check
    kinds = {name.split(":")[0] for name in pipelines}
    if "" in pipelines or "auto" in kinds or len(kinds) > 1:
        # One kind: every segment must run at the precision the plan resolved for that kind.
        raise UsageError(f"--device {value}: want devices of one kind, such as cuda:0,cuda:1 or cuda:0*2")
    return DeviceSpread(tuple(pipelines), auto)


def _every_cuda_device(value: str) -> list[str]:
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise UsageError(f"--device {value}: no CUDA GPU is available to PyTorch here")
    return [f"cuda:{i}" for i in range(count)]


def _pipeline_count(count: str, value: str) -> int:
    if not count.isdigit() or not 1 <= int(count) <= 64:
        raise UsageError(f"--device {value}: want a count of pipelines from 1 to 64, or auto, after *")
    return int(count)


def auto_pipelines(busy: dict[str, float], pipeline_bytes: int, free_bytes: int, most: int = MAX_PIPELINES) -> int:
    """Pipelines for one device, from one pipeline's stage busy shares (percent, video/busy.py) and
    memory: the model's share below the busiest other stage's means the model waits for it, and
    as many pipelines as that ratio keep the model busy; bounded by the pipelines whose memory
    (`pipeline_bytes` each) fits beside the first in `free_bytes`, and by `most`."""
    model = busy.get("model", 0.0)
    feeding = max(busy.get("decode", 0.0), busy.get("encode", 0.0))
    wanted = math.ceil(feeding / model) if model > 0 else 1
    fitting = 1 + free_bytes // pipeline_bytes if pipeline_bytes > 0 else most
    return max(1, min(wanted, fitting, most))


def remaster_on_devices(
    source: Path, output: Path, settings: VideoSettings, spread: DeviceSpread, progress: QuietProgress
) -> tuple[Summary, list[str]]:
    """Remaster one episode with a worker per pipeline; returns the summary and, for each computed
    segment, the worker that computed it."""
    from remaster.engines.device import resolve_device

    for device in set(spread.pipelines):
        resolve_device(device)  # each one checked before any work: an index past the last GPU
    remasterer = Remasterer(replace(settings, engine=replace(settings.engine, device=spread.pipelines[0])), progress)
    job = remasterer.prepare(source, output)
    with remasterer.abandoned_on_failure(job):
        workers, computed, held = _Pipelines(job, spread, progress).run()
        summary = remasterer.finish(job, computed, held)
    return summary, workers


@dataclass
class _Worker:
    name: str  # "cuda:0 #2": its device and its number, for messages
    device: str
    process: multiprocessing.Process
    tasks: multiprocessing.Queue
    ready: bool = False
    segment: int | None = None  # the segment it is computing


@dataclass
class _Pipelines:
    """The workers of one episode, and the segments handed to them."""

    job: Job
    spread: DeviceSpread
    progress: QuietProgress
    workers: list[_Worker] = field(default_factory=list)
    deaths: dict[int, int] = field(default_factory=dict)  # segment -> workers that died on it

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")  # no fork: a CUDA context does not survive one
        self.results = self.context.Queue()
        self.pending = deque(seg.index for seg in self.job.todo)
        self.measured: set[str] = set()  # devices whose pipelines `*auto` has counted
        self.named: dict[str, _Worker] = {}  # every worker started, the dead ones too

    def run(self) -> tuple[list[str], int, int]:
        for device in self.spread.pipelines:
            self._start(device)
        self.progress.status(f"computing the first segments on {self.spread.label}")  # until a whole one is back
        computed_by: list[str] = []
        computed = held = 0
        total = len(self.pending)  # job.todo shrinks as segments are committed
        try:
            while len(computed_by) < total:
                worker, result = self._next_result()
                if result.index in self.job.done:  # a dead worker's last word, after its segment went elsewhere
                    if result.path is not None:
                        Path(result.path).unlink(missing_ok=True)
                    continue
                commit_result(self.job, result, self.progress)
                computed, held = computed + result.computed, held + result.held
                computed_by.append(result.worker)
                if self.spread.auto and worker.device not in self.measured:
                    self._add_pipelines(worker.device, result)
                self._hand_out()
        finally:
            self._stop(len(computed_by) == total)
        return computed_by, computed, held

    def _start(self, device: str) -> None:
        name = f"{device} #{sum(w.device == device for w in self.workers) + 1}"
        tasks = self.context.Queue()
        process = self.context.Process(
            target=_device_worker,
            args=(_on_device(self.job.plan, device), name, tasks, self.results, str(self.job.work.root), os.getpid()),
            name=f"remaster {name}",
            daemon=True,
        )
        process.start()
        self.workers.append(_Worker(name, device, process, tasks))
        self.named[name] = self.workers[-1]

    def _add_pipelines(self, device: str, result: SegmentResult) -> None:
        """`*auto`: as many pipelines on `device` as its first segment's stage shares call for."""
        self.measured.add(device)
        count = auto_pipelines(result.busy, result.pipeline_bytes, result.free_bytes)
        shares = ", ".join(f"{stage} {share:.0f}%" for stage, share in result.busy.items())
        self.progress.note(f"{device}*auto: {counted(count, 'pipeline')} (one pipeline's stages busy: {shares})")
        for _ in range(count - sum(w.device == device for w in self.workers)):
            self._start(device)

    def _hand_out(self) -> None:
        """The next segments to the workers that are free. Every first worker loads its model before
        any starts, so that the first one up does not take the first segments while the others start."""
        if any(not w.ready for w in self.workers[: len(self.spread.pipelines)] if w.process.exitcode is None):
            return
        for worker in self.workers:
            if worker.ready and worker.segment is None and self.pending:
                worker.segment = self.pending.popleft()
                worker.tasks.put(worker.segment)

    def _next_result(self) -> tuple[_Worker, SegmentResult]:
        """The next finished segment; a worker's failure raised here; a worker gone without a word
        noticed, and its segment handed to another."""
        while True:
            try:
                kind, name, payload = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                self._bury_dead()
                self._hand_out()
                continue
            worker = self.named[name]
            if kind == "failed":
                raise _unpickled(payload)
            if kind == "ready":
                worker.ready = True
                self._hand_out()
                continue
            worker.segment = None
            return worker, payload

    def _bury_dead(self) -> None:
        for worker in [w for w in self.workers if w.process.exitcode not in (None, 0)]:
            self.workers.remove(worker)
            code, lost = worker.process.exitcode, worker.segment
            said = f"the worker on {worker.device} died (exit code {code})"
            if not any(w.process.exitcode is None for w in self.workers):
                raise RemasterError(said)
            if lost is None:
                self.progress.note(f"{said}; the other workers go on")
                continue
            self.deaths[lost] = self.deaths.get(lost, 0) + 1
            if self.deaths[lost] >= DEATHS_PER_SEGMENT:
                raise RemasterError(f"{said}, the second worker to die on segment {lost}")
            self.pending.appendleft(lost)
            self.progress.note(f"{said}; its segment {lost} goes to another worker")

    def _stop(self, finished: bool) -> None:
        for worker in self.workers:
            if finished:
                worker.tasks.put(None)  # its end mark: it leaves by itself
            elif worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: its segment in progress and private folder go (tasks.py)
        for worker in self.workers:
            worker.process.join()


def _on_device(plan: JobPlan, device: str) -> JobPlan:
    return replace(plan, engine=replace(plan.engine, device=device))


def _device_worker(
    plan: JobPlan, name: str, tasks: multiprocessing.Queue, results: multiprocessing.Queue, shared: str, parent: int
) -> None:
    """One pipeline's worker: the model loaded once, then the segments it is handed until the end mark."""
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
        results.put(("ready", name, None))
        while (index := tasks.get()) is not None:
            result = compute_segment(plan, index, shared, upscaler)
            results.put(("done", name, replace(result, **_pipeline_memory(upscaler.device))))
    except KeyboardInterrupt:  # stopped by the job process (SIGTERM): it knows why
        return
    except Exception as exc:  # noqa: BLE001 - handed to the job process, which raises it
        results.put(("failed", name, _picklable(exc)))


def _pipeline_memory(device) -> dict[str, int]:  # noqa: ANN001 - a torch.device, torch imported late
    """What one pipeline holds at most (its process's peak) and what its device has free beside it."""
    from remaster.engines.device import free_memory

    if device.type == "cuda":
        import torch

        # The CUDA context (about 0.5 GiB) is not in PyTorch's count: the reserved peak is a floor.
        free, _ = torch.cuda.mem_get_info(device)
        return {"pipeline_bytes": torch.cuda.max_memory_reserved(device), "free_bytes": free}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {"pipeline_bytes": peak, "free_bytes": free_memory(device)}


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

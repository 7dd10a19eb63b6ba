"""Scale-out on Ray: one episode's segments run as Ray tasks, on every GPU (or CPU) of a cluster.

The driver plans the episode and holds its work folder, exactly as a local run does; each
segment still to do becomes a task that computes that one segment on whatever node Ray gives it
(asking for `num_gpus` GPUs, so Ray sets CUDA_VISIBLE_DEVICES) and hands the segment file back:
through Ray's object store by default, or, with a shared work folder, as a file written there.
The driver commits each returned segment as a checkpoint, and assembles the episode when all
are done. A rerun resumes from the finished segments, as a local run does.

The input must be readable at the same path on every node (a shared filesystem, or the same
copy everywhere). Ray is an optional dependency: `pip install 'remaster[cluster]'`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from remaster.engine.device import precision_name, resolve_precision
from remaster.errors import UsageError
from remaster.models.fidelity import auto_bf16
from remaster.process_settings import apply_process_settings
from remaster.video.pipeline import Remasterer, VideoSettings
from remaster.video.progress import QuietProgress, Summary


@dataclass(frozen=True)
class SegmentResult:
    index: int
    frames: int
    first_pts: int
    last_pts: int
    computed: int  # frames the model ran on
    held: int  # frames that reused a held drawing's result
    data: bytes | None  # the segment file, through the object store
    path: str | None  # or where it was written in the shared work folder
    worker: str  # host and process that computed it, for the record


def compute_segment(source: str, output: str, settings: VideoSettings, index: int, shared: str | None) -> SegmentResult:
    """Compute one segment of an episode into a private work folder, and hand the file back."""
    apply_process_settings(signals=False)  # a Ray worker never ran cli.main; Ray owns its signals
    with tempfile.TemporaryDirectory(prefix="remaster-segment-") as tmp:
        local = replace(settings, workdir=Path(tmp) / "work", keep_workdir=True, overwrite=True)
        remasterer = Remasterer(local, QuietProgress())
        job = remasterer.prepare(Path(source), Path(output))
        try:
            segment = job.segments[index]
            computed, held = remasterer.compute(job, [segment])
            record = job.work.records[segment.key]
            file = job.done[index]
            data = path = None
            if shared is None:
                data = file.read_bytes()
            else:
                path = str(Path(shared) / f"incoming-{uuid.uuid4().hex}.mkv")
                os.replace(file, path) if _same_filesystem(file, Path(shared)) else Path(path).write_bytes(
                    file.read_bytes()
                )
        finally:
            job.work.close()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    return SegmentResult(index, record.frames, record.first_pts, record.last_pts, computed, held, data, path, worker)


def one_precision(settings: VideoSettings, on_gpu: bool) -> VideoSettings:
    """`--precision auto` resolved once, by the driver, for the devices the tasks will run on.

    Left to each node, `auto` could give fp16 on a GPU node, bf16 on a CPU node with AVX-512
    BF16 and fp32 on an older one: one episode with segments at three precisions, and a
    checkpoint record naming only one. Decided here, every segment runs what the record says;
    a CPU node that cannot run bf16 fails its task with a clear error instead.
    """
    engine = settings.engine
    if engine.precision != "auto":
        return settings
    on_gpu = engine.device.startswith("cuda") or (on_gpu and engine.device == "auto")
    dtype = resolve_precision("auto", torch.device("cuda" if on_gpu else "cpu"), auto_bf16(settings.model))
    return replace(settings, engine=replace(engine, precision=precision_name(dtype)))


def _same_filesystem(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'remaster[cluster]'") from None
    return ray


def remaster_on_ray(
    source: Path,
    output: Path,
    settings: VideoSettings,
    address: str,
    gpus_per_task: float | None = None,
    shared_workdir: bool = False,
    progress: QuietProgress | None = None,
) -> tuple[Summary, list[str]]:
    """Remaster one episode with its segments spread over a Ray cluster; returns the summary and,
    for each computed segment, the worker that computed it.

    `address`: `local` starts a Ray instance on this machine; `auto` joins the cluster this
    machine is part of (`ray start`); anything else is a cluster address (ray://host:10001).
    """
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    progress = progress or QuietProgress()
    if gpus_per_task is None:
        gpus_per_task = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    settings = one_precision(settings, on_gpu=gpus_per_task > 0)
    remasterer = Remasterer(settings, progress)
    job = remasterer.prepare(source, output)
    workers: list[str] = []
    try:
        # Ray retries a task whose worker died (out of memory, a lost node) on another one.
        task = ray.remote(num_gpus=gpus_per_task, max_retries=2)(compute_segment)
        shared = str(job.work.root) if shared_workdir else None
        pending = {
            task.remote(str(source.absolute()), str(job.output), settings, seg.index, shared): seg for seg in job.todo
        }
        computed = held = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            segment = pending.pop(ready[0])
            result: SegmentResult = ray.get(ready[0])
            partial = job.work.partial_path(segment)
            if result.data is not None:
                partial.write_bytes(result.data)
            else:
                os.replace(result.path, partial)
            job.done[segment.index] = job.work.commit(
                segment, partial, result.frames, result.first_pts, result.last_pts
            )
            computed, held = computed + result.computed, held + result.held
            workers.append(result.worker)
            progress.segment_started(segment.index, result.frames)
            progress.frames_done(result.frames)
            progress.segment_done(segment.index, result.frames)
        summary = remasterer.finish(job, computed, held)
    except BaseException:
        remasterer.abandon(job)
        raise
    return summary, workers

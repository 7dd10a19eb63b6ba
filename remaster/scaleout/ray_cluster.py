"""Scale-out on Ray: one episode's segments run as Ray tasks, on every GPU (or CPU) of a cluster.

The driver plans the episode and holds its work folder, exactly as a local run does; each
segment still to do becomes a task, given the driver's plan (video/plan.py: JobPlan, through
Ray's object store once) and the segment's index, that computes that one segment, without
probing the input again, on whatever node Ray gives it
(asking for `num_gpus` GPUs, so Ray sets CUDA_VISIBLE_DEVICES) and hands the segment file back:
through Ray's object store by default, or, with a shared work folder, as a file written there.
The driver commits each returned segment as a checkpoint, and assembles the episode when all
are done. A rerun resumes from the finished segments, as a local run does.

The input must be readable at the same path on every node (a shared filesystem, or the same
copy everywhere); so must the work folder for an input whose timestamps restart, since the tasks
read the copy on one timeline the driver made there. Ray is an optional dependency: `pip install 'remaster[cluster]'`.
"""

from __future__ import annotations

from pathlib import Path

from remaster.core.errors import UsageError
from remaster.core.process_settings import apply_process_settings
from remaster.scaleout.tasks import SegmentResult, commit_result, compute_segment
from remaster.video.pipeline import Remasterer
from remaster.video.plan import JobPlan, VideoSettings
from remaster.video.progress import QuietProgress, Summary


def _ray_task(plan: JobPlan, index: int, shared: str | None) -> SegmentResult:
    apply_process_settings(signals=False)  # a Ray worker never ran cli.main; Ray owns its signals
    return compute_segment(plan, index, shared)


def task_device(engine_device: str, on_gpu: bool) -> str:
    """Where the tasks run: Ray gives each GPU task its own CUDA_VISIBLE_DEVICES, so a GPU task
    runs on "cuda" whatever index the driver's option named; a device named cpu stays on the CPU."""
    return "cuda" if engine_device.startswith("cuda") or (on_gpu and engine_device == "auto") else "cpu"


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
    remasterer = Remasterer(settings, progress)
    # The driver plans, once, for the tasks' device: one precision for every segment (plan.resolve_engine).
    job = remasterer.prepare(source, output, task_device(settings.engine.device, on_gpu=gpus_per_task > 0))
    workers: list[str] = []
    with remasterer.abandoned_on_failure(job):  # Ctrl-C while ray.wait too
        # Ray retries a task whose worker died (out of memory, a lost node) on another one.
        task = ray.remote(num_gpus=gpus_per_task, max_retries=2)(_ray_task)
        shared = str(job.work.root) if shared_workdir else None
        plan = ray.put(job.plan)  # once into the object store, not once per task
        pending = {task.remote(plan, seg.index, shared): seg for seg in job.todo}
        progress.status("computing the first segments on the Ray cluster")  # until a whole one is back
        computed = held = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(ready[0])
            result: SegmentResult = ray.get(ready[0])
            commit_result(job, result, progress)
            computed, held = computed + result.computed, held + result.held
            workers.append(result.worker)
        summary = remasterer.finish(job, computed, held)
    return summary, workers

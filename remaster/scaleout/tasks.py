"""A segment computed away from its job's process (a Ray task, a device worker), and taken back.

The job's process plans and holds the work folder; a task gets the plan and one segment's index,
computes that segment into a private work folder of its own, and hands the file back (as bytes,
or moved into the job's work folder when it can see it). The job's process then commits it as a
checkpoint, exactly as a segment computed in the job's own process is committed.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from remaster.engines.base import Upscaler
from remaster.engines.choice import make_upscaler
from remaster.models.loader import load_model
from remaster.video.checkpoint import WorkDir
from remaster.video.pipeline import Job, compute_segments
from remaster.video.plan import JobPlan
from remaster.video.progress import QuietProgress


@dataclass(frozen=True)
class SegmentResult:
    index: int
    frames: int
    first_pts: int
    last_pts: int
    computed: int  # frames the model ran on
    held: int  # frames that reused a held drawing's result
    data: bytes | None  # the segment file, as bytes (through Ray's object store)
    path: str | None  # or where it was moved in the job's work folder
    worker: str  # host and process that computed it, for the record
    busy: dict[str, float] = field(default_factory=dict)  # each stage's busy percent (video/busy.py)
    pipeline_bytes: int = 0  # the most memory its pipeline held (device workers: scaleout/devices.py)
    free_bytes: int = 0  # its device's free memory beside it then


def compute_segment(
    plan: JobPlan, index: int, shared: str | None, upscaler: Upscaler | None = None
) -> SegmentResult:
    """Compute segment `index` of `plan` and hand the file back. The plan is the job's, whole: a
    task never probes the input or decides anything. `shared`: the job's work folder, if this
    process can write there; `upscaler`: one a worker keeps from segment to segment."""
    segment = plan.segments[index]
    upscaler = upscaler or make_upscaler(load_model(plan.model), plan.engine)
    with tempfile.TemporaryDirectory(prefix="remaster-segment-") as tmp:
        work = WorkDir(Path(tmp) / "work", plan.fingerprint, plan.output_settings(), owned=True).open()
        try:
            job = Job(plan, work, {}, time.monotonic())
            progress = QuietProgress()
            computed, held = compute_segments(job, [segment], upscaler, progress)
            record, file = work.records[segment.key], job.done[index]
            data = path = None
            if shared is None:
                data = file.read_bytes()
            else:
                path = str(Path(shared) / f"incoming-{uuid.uuid4().hex}.mkv")
                if os.stat(file).st_dev == os.stat(shared).st_dev:
                    os.replace(file, path)
                else:
                    Path(path).write_bytes(file.read_bytes())
        finally:
            work.close()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    busy = progress.busy.shares()
    return SegmentResult(
        index, record.frames, record.first_pts, record.last_pts, computed, held, data, path, worker, busy
    )


def commit_result(job: Job, result: SegmentResult, progress: QuietProgress) -> None:
    """Take a task's segment into the job's work folder as a checkpoint, and report it."""
    segment = job.plan.segments[result.index]
    partial = job.work.partial_path(segment)
    if result.data is not None:
        partial.write_bytes(result.data)
    else:
        os.replace(result.path, partial)
    job.done[segment.index] = job.work.commit(segment, partial, result.frames, result.first_pts, result.last_pts)
    progress.segment_started(segment.index, result.frames)
    progress.frames_done(result.frames, result.held)
    progress.segment_done(segment.index, result.frames)

"""The video pipeline: one input file to one remastered file, resumable segment by segment.

    plan (video/plan.py) -> open the work folder -> stages (video/stages.py): decode -> held
    drawings -> upscale -> encode a checkpoint per segment -> concatenate -> mux -> verify -> rename

`Remasterer` holds what lasts across inputs (the model, loaded on first use); a `Job` is one
input's run: its plan, a value, and what changes while it runs (the work folder, the segments
finished so far).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from remaster.architectures.descriptor import LoadedModel
from remaster.core.errors import Interrupted, RemasterError, ResourceError
from remaster.core.outputs import commit_file, hidden_name
from remaster.core.precision import COMPUTED_PRECISIONS, Precision
from remaster.core.wording import counted
from remaster.engines.base import Upscaler
from remaster.engines.choice import make_upscaler, resolve_engine_choice
from remaster.engines.kinds import Engine
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model
from remaster.video.checkpoint import WorkDir, remove_finished
from remaster.video.concat import concatenate
from remaster.video.decode import DecodeStats
from remaster.video.encode import check_encoder
from remaster.video.mux import mux
from remaster.video.normalise import forget_copy
from remaster.video.plan import JobPlan, VideoSettings, default_workdir, plan_job
from remaster.video.probe import probe
from remaster.video.progress import QuietProgress, Summary
from remaster.video.segments import Segment
from remaster.video.stages import DecodeStage, EncodeStage, HeldDrawings, UpscaleStage, run_stages, through


def clean_finished_work(output: Path, workdir: Path | None) -> None:
    """Remove the work folder of `output` if a run was killed after the output was in place but
    before the folder was gone (see checkpoint.remove_finished); call it before skipping or
    refusing an output that exists, or that folder would stay forever."""
    output = output.absolute()
    with contextlib.suppress(OSError):  # only tidying: a folder it cannot read is reported by the run itself
        remove_finished(workdir or default_workdir(output), output, owned=workdir is None)


@dataclass
class Job:
    """One input's run, between open_job() and finish(): its plan and its work folder."""

    plan: JobPlan
    work: WorkDir
    done: dict[int, Path]  # segment index -> finished file; grows as segments are committed
    t0: float
    reused: list[int] = field(default_factory=list)  # segments an earlier run had finished
    decoded: DecodeStats = field(default_factory=DecodeStats)  # this process's decoding, all segments together

    def __post_init__(self) -> None:
        self.reused = sorted(self.done)

    @property
    def todo(self) -> list[Segment]:
        return [seg for seg in self.plan.segments if seg.index not in self.done]


class Remasterer:
    """Runs the pipeline for any number of inputs with one model, loaded on first use."""

    def __init__(self, settings: VideoSettings, progress: QuietProgress | None = None):
        self.settings = settings
        self.progress = progress or QuietProgress()
        self._loaded: LoadedModel | None = None
        self._upscaler: Upscaler | None = None
        check_encoder(settings.encoder)

    def loaded_model(self) -> LoadedModel:
        if self._loaded is None:
            self.progress.status("loading model")
            self._loaded = load_model(self.settings.model)
        return self._loaded

    def model_scale(self) -> int:
        """A packaged model's scale from its name, so that a job refused while planning never
        loads it; any other model is loaded once here, for the plan and the upscaler alike."""
        packaged = packaged_models().get(self.settings.model)
        return packaged.scale if packaged else self.loaded_model().descriptor.scale

    def min_side(self) -> int:
        """The smallest picture side the model takes (Real-CUGAN's padding: 20 px at 2x)."""
        return self.loaded_model().descriptor.min_size

    def model_precisions(self) -> tuple[Precision, ...]:
        """The precisions the model runs in: all for a packaged one; a community model's own."""
        if self.settings.model in packaged_models():
            return COMPUTED_PRECISIONS
        return self.loaded_model().descriptor.precisions

    def fix_engine(self, plan: JobPlan, task_device: str | None) -> JobPlan:
        """The plan with its engine decided, once, here: every worker and every resumed run then
        computes with the same one (`--engine auto` on a CPU measures, and a measurement could
        differ between two workers). Ray tasks run torch unless told `--engine ncnn`: their
        CPUs are not this machine's to measure."""
        if task_device is None:
            return replace(plan, engine=resolve_engine_choice(self.loaded_model(), plan.engine, self.progress.status))
        if plan.engine.engine == Engine.AUTO:
            return replace(plan, engine=replace(plan.engine, engine=Engine.TORCH))
        return plan

    def upscaler(self, plan: JobPlan) -> Upscaler:
        if self._upscaler is None:
            loaded = self.loaded_model()
            self.progress.status(f"starting the {plan.engine.engine} engine on {plan.engine.device}")
            self._upscaler = make_upscaler(loaded, plan.engine)
        return self._upscaler

    def run(self, source: Path, output: Path) -> Summary:
        """The whole job: plan, compute what no earlier run finished, assemble, verify, rename."""
        job = self.prepare(source, output)
        try:
            counts = self.compute(job, job.todo)
            summary = self.finish(job, *counts)
        except BaseException as exc:
            # Looked at before abandon(), which removes a folder that holds nothing finished.
            deleted = isinstance(exc, Exception) and not isinstance(exc, Interrupted) and not job.work.root.is_dir()
            self.abandon(job)
            if deleted:  # the error itself names no file (FFmpeg's) or only one inside the folder
                raise ResourceError(
                    f"{job.plan.media.path}: the work folder {job.work.root} was deleted while remaster ran "
                    "(its finished segments with it): run again to start over"
                ) from exc
            raise
        return summary

    def prepare(self, source: Path, output: Path, task_device: str | None = None) -> Job:
        """Plan the job and open its work folder (locked): what is done, what is to do.
        `task_device`: see plan_job."""
        t0 = time.monotonic()
        try:
            scale, precisions, status = self.model_scale(), self.model_precisions(), self.progress.status
            plan = plan_job(
                source, output, self.settings, scale, task_device, precisions, status=status, min_side=self.min_side
            )
            return self.open_job(self.fix_engine(plan, task_device), t0)
        except BaseException:
            # A refusal after the input was copied onto one timeline (damaged, too large...).
            workdir = self.settings.workdir
            forget_copy(workdir or default_workdir(output.absolute()), owned=workdir is None)
            raise

    def open_job(self, plan: JobPlan, t0: float | None = None) -> Job:
        """Open the plan's work folder: the segments an earlier run of the same plan finished are done."""
        s = self.settings
        for note in plan.notes:
            self.progress.note(note)
        effective = {
            "preset": s.preset.name,
            "engine": asdict(s.engine),
            "segment_seconds": s.segment_seconds,
            "start": s.start,
            "end": s.end,
            "plan": plan.describe(),
        }
        work = WorkDir(plan.workdir, plan.fingerprint, plan.output_settings(), effective, owned=plan.owned_workdir)
        work.open()
        if work.invalidated:
            self.progress.note(f"earlier work in {plan.workdir} discarded: {work.invalidated}")
        done = {seg.index: path for seg in plan.segments if (path := work.finished(seg)) is not None}
        job = Job(plan, work, done, time.monotonic() if t0 is None else t0)
        self.progress.start(str(plan.source), str(plan.output), plan.frames, len(plan.segments), sorted(done))
        self.progress.reused(sum(work.records[plan.segments[i].key].frames for i in done))
        return job

    def finish(self, job: Job, computed: int, held: int) -> Summary:
        """Assemble the segments into the output, release and (unless kept) empty the work folder:
        remaster's own files only, and the folder itself if remaster made it."""
        summary = self._assemble(job)
        elapsed = time.monotonic() - job.t0
        summary.computed_frames, summary.reused_frames, summary.seconds = computed, held, elapsed
        summary.fps = (computed + held) / elapsed if elapsed else 0.0
        summary.reused_segments = job.reused
        summary.notes = list(job.plan.damage) + summary.notes
        summary.computed_segments = [seg.index for seg in job.plan.segments if seg.index not in job.reused]
        summary.decoded_packets, summary.decoder_opens = job.decoded.packets, job.decoded.opens
        if not self.settings.keep_workdir:
            job.work.discard()
        job.work.close()
        self.progress.finished(summary)
        return summary

    def abandon(self, job: Job) -> None:
        """After a failure or an interruption: keep what is finished, or leave no trace if nothing is."""
        self.progress.stop()
        if not job.work.records:
            job.work.discard()
        job.work.close()

    @contextlib.contextmanager
    def abandoned_on_failure(self, job: Job) -> Iterator[None]:
        """Around work on `job` done elsewhere (worker processes, Ray tasks): after a failure
        abandon it; Ctrl-C or SIGTERM becomes the one line saying what is kept (`interrupted`)."""
        try:
            yield
        except KeyboardInterrupt:
            self.abandon(job)
            raise interrupted(job) from None
        except BaseException:
            self.abandon(job)
            raise

    def compute(self, job: Job, todo: list[Segment]) -> tuple[int, int]:
        """Decode, upscale and encode the segments not done yet; returns the frames the model
        ran on, and those that reused a held drawing's result."""
        if not todo:
            return 0, 0
        try:
            upscaler = self.upscaler(job.plan)
            self.progress.status("upscaling the first frames")
            return compute_segments(job, todo, upscaler, self.progress)
        except KeyboardInterrupt:
            raise interrupted(job) from None

    def _assemble(self, job: Job) -> Summary:
        plan, work, output = job.plan, job.work, job.plan.output
        video_file = work.root / "video.mkv"
        frames = concatenate([job.done[seg.index] for seg in plan.segments], video_file)
        # The finished file is written in the work folder (beside the output, on the same
        # filesystem) and renamed into place only once verified: the output path never
        # holds a partial file.
        same_fs = os.stat(work.root).st_dev == os.stat(output.parent.resolve()).st_dev
        staging = work.root if same_fs else output.parent
        tmp = staging / hidden_name(output.stem, f".partial{output.suffix}")
        try:
            notes = mux(video_file, plan.media, tmp, plan.output_format, work.root, plan.time_range, plan.made_with)
            for note in notes:
                self.progress.note(note)
            streams = _verify_output(tmp, video_file)
            if not self.settings.keep_workdir:
                work.record_output(tmp)
            commit_file(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
        return Summary(
            input=str(plan.media.path),
            output=str(output),
            frames=frames,
            computed_frames=0,
            reused_segments=[],
            computed_segments=[],
            seconds=0.0,
            fps=0.0,
            size=output.stat().st_size,
            streams=streams,
            notes=notes,
        )


def interrupted(job: Job) -> Interrupted:
    """What Ctrl-C or SIGTERM while computing says: what is kept, and how to go on."""
    if not job.done:  # nothing to resume, and abandon() removes the work folder it would name
        return Interrupted("interrupted; nothing was finished")
    return Interrupted(
        f"interrupted; {counted(len(job.done), 'segment')} finished and kept in {job.work.root}: "
        "run the same command again to resume"
    )


def compute_segments(job: Job, todo: list[Segment], upscaler: Upscaler, progress: QuietProgress) -> tuple[int, int]:
    """`todo`'s frames through the stages, each segment committed into the job's work folder as it
    is finished; returns the frames the model ran on and those that reused a held drawing's result."""
    plan = job.plan
    decode = DecodeStage(plan, todo)
    batch = plan.batch or upscaler.batch_for(plan.media.video.height, plan.media.video.width)
    upscale = UpscaleStage(upscaler, plan.frame, batch)
    encode = EncodeStage.for_plan(plan, job.work, job.done, progress)
    try:
        # The held-drawing check runs in the decoding thread: off the model's.
        source = through(decode.messages(), [HeldDrawings(plan.reuse)])
        run_stages(source, [upscale], encode, batch, progress.busy)
    finally:
        job.decoded.add(decode.stats)
    return upscale.computed, upscale.held


def _verify_output(path: Path, video_file: Path) -> list[str]:
    """Probe the finished file before it takes the output's name: it must hold every frame of the
    new video, each at a time of its own (strictly increasing: a player shows only one of frames
    that share one), spanning the same times, and the streams it was given."""
    result, video = probe(path), probe(video_file).video
    got = result.video
    if got.decoded_pts:  # the probe found frames sharing a timestamp (and repaired them, in memory only)
        uses = Counter(got.decoded_pts)
        shared = sum(n - 1 for n in uses.values())
        first = min(p for p, n in uses.items() if n > 1)
        raise RemasterError(
            f"{path}: the finished file's video timestamps are not strictly increasing: "
            f"{counted(shared, 'frame')} on a timestamp another frame has, the first at {got.seconds(first):.3f} s"
        )
    if got.frame_count != video.frame_count:
        has = counted(got.frame_count, "frame")
        raise RemasterError(f"{path}: the finished file has {has}, expected {video.frame_count}")
    want = (video.seconds(video.pts[0]), video.seconds(video.pts[-1]))
    span = (got.seconds(got.pts[0]), got.seconds(got.pts[-1]))
    if max(abs(a - b) for a, b in zip(want, span, strict=True)) > 0.001:
        raise RemasterError(
            f"{path}: the video runs {span[0]:.3f}-{span[1]:.3f} s, expected {want[0]:.3f}-{want[1]:.3f} s"
        )
    return [s.describe() for s in result.streams]

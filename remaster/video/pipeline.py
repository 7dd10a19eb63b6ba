"""The video pipeline: one input file to one remastered file, resumable segment by segment.

    probe -> plan segments -> decode (thread) -> RGB -> upscale (this thread) -> Y'CbCr
          -> encode segment (thread) -> checkpoint -> concatenate -> mux -> verify -> rename

Decoding, upscaling and encoding overlap through bounded queues, so memory does not grow with
the length of the video, and the model never waits for the encoder of the previous frame.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from remaster import __version__
from remaster.engine.device import resolve_device, resolve_precision
from remaster.engine.upscaler import EngineSettings, Upscaler
from remaster.errors import DamagedInput, Interrupted, RemasterError, ResourceError, UsageError
from remaster.limits import check_pixels
from remaster.media.pixels import pix_fmt_layout, square_pixel_size
from remaster.models.catalog import packaged_models
from remaster.models.fidelity import auto_bf16
from remaster.models.loader import load_model
from remaster.outputs import commit_file, refuse_to_destroy
from remaster.presets import Preset
from remaster.video.checkpoint import WorkDir, remove_finished
from remaster.video.colour import ColourSpec, planes_to_rgb, rgb_to_planes
from remaster.video.concat import concatenate
from remaster.video.damage import find_holes
from remaster.video.decode import DecodeStats, Planes, decode_segments
from remaster.video.encode import (
    EncoderSettings,
    OutputColour,
    SegmentWriter,
    VideoFormat,
    check_encoder,
    check_output_size,
)
from remaster.video.fields import (
    CYCLE,
    FieldMode,
    FieldPlan,
    detect_fields,
    filtered_segment,
    plan_fields,
    snap_to_cycles,
)
from remaster.video.mux import mux
from remaster.video.normalise import forget_copy, probe_on_one_timeline
from remaster.video.probe import SD_MAX_HEIGHT, MediaInfo, VideoInfo, fingerprint, probe
from remaster.video.progress import QuietProgress, Summary
from remaster.video.reuse import ReuseMode, same_drawing
from remaster.video.segments import Segment, frames_in_range, plan_segments
from remaster.wording import counted

OUTPUT_FORMATS = {".mkv": "matroska", ".mp4": "mp4"}
# AVCOL_* tag values (libavutil/pixfmt.h): BT.709 = 1; SMPTE 170M (NTSC) = 6; BT.470BG (PAL) = 5.
BT709_TAGS = (1, 1, 1)
QUEUE_FRAMES = 8  # frames waiting between stages; enough to keep each busy, small enough for 4K


@dataclass(frozen=True)
class VideoSettings:
    preset: Preset
    model: str  # the preset's model unless --model
    engine: EngineSettings
    encoder: EncoderSettings  # resolved: no empty fields
    batch: int = 1
    segment_seconds: float = 30
    workdir: Path | None = None
    keep_workdir: bool = False
    overwrite: bool = False
    start: float | None = None
    end: float | None = None
    allow_damaged: bool = False
    reuse: ReuseMode = ReuseMode.AUTO  # held frames (video/reuse.py)
    fields: FieldMode = FieldMode.AUTO  # video/fields.py
    field_rate: bool = False  # deinterlace to one frame per field
    square_pixels: bool = False  # resample anamorphic video to square pixels
    max_pixels: int | None = None  # largest frame area; None: $REMASTER_MAX_PIXELS or the default (limits.py)


def default_workdir(output: Path) -> Path:
    return output.with_name(f".{output.name}.remaster")


def clean_finished_work(output: Path, workdir: Path | None) -> None:
    """Remove the work folder of `output` if a run was killed after the output was in place but
    before the folder was gone (see checkpoint.remove_finished); call it before skipping or
    refusing an output that exists, or that folder would stay forever."""
    output = output.absolute()
    with contextlib.suppress(OSError):  # only tidying: a folder it cannot read is reported by the run itself
        remove_finished(workdir or default_workdir(output), output, owned=workdir is None)


def check_output(source: Path, output: Path, overwrite: bool) -> str:
    """Refuse outputs that would destroy something; returns the output's container format."""
    output_format = OUTPUT_FORMATS.get(output.suffix.lower())
    if output_format is None:
        raise UsageError(f"{output}: the output must end in {' or '.join(OUTPUT_FORMATS)}")
    refuse_to_destroy(source, output, overwrite)
    return output_format


def output_colour(video: VideoInfo, height: int) -> OutputColour:
    """HD and UHD output is BT.709, converted and tagged; SD output keeps the source's matrix."""
    if height > SD_MAX_HEIGHT or video.matrix == "bt709":
        return OutputColour("bt709", *BT709_TAGS)
    tags = video.tagged
    if video.matrix == "bt2020nc":
        return OutputColour("bt2020nc", 9, tags["color_primaries"] or 9, tags["color_trc"] or 14)
    pal = 5 if video.height == 576 else 6
    return OutputColour("bt601", tags["colorspace"] or pal, tags["color_primaries"] or pal, tags["color_trc"] or 6)


def _even(value: int, shift: int) -> int:
    """Encoders refuse 4:2:0/4:2:2 pictures of odd size: drop the last row or column."""
    return value - value % (1 << shift)


@dataclass(frozen=True)
class _OutputFrame:
    """A remastered frame as the encoder takes it: the model's output, cut or resampled to this
    size, in these planes (not the export's ExportFrame, made from a finished file by FFmpeg)."""

    width: int
    height: int
    spec: ColourSpec  # of the output planes
    source_matrix: str
    sar: Fraction  # of the output: the source's, or 1 with --square-pixels
    resample: bool  # --square-pixels: resize the model's output to (width, height)


@dataclass
class Job:
    """One input's run, between prepare() and finish(): its plan and its work folder."""

    output: Path
    output_format: str
    media: MediaInfo
    fields: FieldPlan
    segments: list[Segment]
    geometry: _OutputFrame
    colour: OutputColour
    work: WorkDir
    done: dict[int, Path]  # segment index -> finished file; grows as segments are committed
    t0: float
    reused: list[int] = field(default_factory=list)  # segments an earlier run had finished
    damage: list[str] = field(default_factory=list)  # damage gone past and timestamps repaired, for the summary
    decoded: DecodeStats = field(default_factory=DecodeStats)  # this process's decoding, all segments together

    def __post_init__(self) -> None:
        self.reused = sorted(self.done)

    @property
    def todo(self) -> list[Segment]:
        return [seg for seg in self.segments if seg.index not in self.done]


class Remasterer:
    """Runs the pipeline for any number of inputs with one model, loaded on first use."""

    def __init__(self, settings: VideoSettings, progress: QuietProgress | None = None):
        self.settings = settings
        self.progress = progress or QuietProgress()
        self._upscaler: Upscaler | None = None
        check_encoder(settings.encoder)

    def upscaler(self) -> Upscaler:
        if self._upscaler is None:
            self._upscaler = Upscaler(load_model(self.settings.model), self.settings.engine)
        return self._upscaler

    def _scale(self) -> int:
        packaged = packaged_models().get(self.settings.model)
        return packaged.scale if packaged else self.upscaler().descriptor.scale

    def _geometry(self, video: VideoInfo) -> _OutputFrame:
        scale = self._scale()
        shift, bits = pix_fmt_layout(self.settings.encoder.pix_fmt)
        width, height, sar = video.width * scale, video.height * scale, video.sar
        if self.settings.square_pixels and sar != 1:
            square_width, square_height = square_pixel_size(Fraction(width), Fraction(height), sar)
            width, height, sar = round(square_width), round(square_height), Fraction(1)
        width, height = _even(width, shift[0]), _even(height, shift[1])
        resample = (width, height) != (video.width * scale, video.height * scale) and sar == 1 and video.sar != 1
        colour = output_colour(video, height)
        return _OutputFrame(width, height, ColourSpec(colour.matrix, False, bits, shift), video.matrix, sar, resample)

    def output_settings(self, media: MediaInfo, geometry: _OutputFrame, colour: OutputColour) -> dict:
        """What decides the output's pixels and bytes: a change to any of it invalidates checkpoints."""
        engine = self.settings.engine
        precision = resolve_precision(engine.precision, resolve_device(engine.device), auto_bf16(self.settings.model))
        return {
            "remaster": __version__,
            "model": self.settings.model,
            "precision": str(precision).removeprefix("torch."),
            "encoder": asdict(self.settings.encoder),
            "size": [geometry.width, geometry.height],
            "sar": str(geometry.sar),
            "reuse": self.settings.reuse,
            "colour": asdict(colour),
            "time_base": str(media.video.time_base),
        }

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
                    f"{job.media.path}: the work folder {job.work.root} was deleted while remaster ran "
                    "(its finished segments with it): run again to start over"
                ) from exc
            raise
        return summary

    def prepare(self, source: Path, output: Path) -> Job:
        """Probe, plan the segments and open the work folder (locked): what is done, what is to do."""
        try:
            return self._prepare(source, output)
        except BaseException:
            # A refusal after the input was copied onto one timeline (damaged, too large...).
            workdir = self.settings.workdir
            forget_copy(workdir or default_workdir(output.absolute()), owned=workdir is None)
            raise

    def _prepare(self, source: Path, output: Path) -> Job:
        t0 = time.monotonic()
        s = self.settings
        # Absolute: FFmpeg reads a relative name such as "ep: 1.mkv" as a protocol ("ep:").
        source, output = source.absolute(), output.absolute()
        output_format = check_output(source, output, s.overwrite)
        root = s.workdir or default_workdir(output)
        # media.path is the input, or its copy on one timeline in the work folder (a timestamp reset).
        media, joined = probe_on_one_timeline(source, root, owned=s.workdir is None)
        video = media.video
        check_pixels(source, video.width, video.height, s.max_pixels)
        damage = joined + _check_index(media, s.allow_damaged) + _retimed_note(media)
        for note in damage:
            self.progress.note(note)
        frames = frames_in_range(video, s.start, s.end)
        report = detect_fields(media.path, video) if s.fields == "auto" else None
        fields = plan_fields(s.fields, report, video, s.field_rate)
        if report is not None:
            self.progress.note(f"{source.name}: fields {report.describe()}: {fields.describe()}")
        if fields.mode == "ivtc":
            first = snap_to_cycles(frames, video)
            frames = video.pts[first : video.pts.index(frames[-1]) + 1]
        segments = plan_segments(video, s.segment_seconds, frames, CYCLE if fields.mode == "ivtc" else None)
        geometry = self._geometry(video)
        check_output_size(source, s.encoder, geometry.width, geometry.height)
        colour = output_colour(video, geometry.height)

        effective = {
            "preset": s.preset.name,
            "engine": asdict(s.engine),
            "batch": s.batch,
            "segment_seconds": s.segment_seconds,
            "start": s.start,
            "end": s.end,
            "allow_damaged": s.allow_damaged,
        }
        settings = self.output_settings(media, geometry, colour) | {"fields": fields.describe()}
        work = WorkDir(root, fingerprint(source), settings, effective, owned=s.workdir is None).open()
        if work.invalidated:
            self.progress.note(f"earlier work in {root} discarded: {work.invalidated}")
        done = {seg.index: path for seg in segments if (path := work.finished(seg)) is not None}
        job = Job(output, output_format, media, fields, segments, geometry, colour, work, done, t0, damage=damage)
        self.progress.start(str(source), str(output), fields.output_count(len(frames)), len(segments), sorted(done))
        self.progress.reused(sum(work.records[segments[i].key].frames for i in done))
        return job

    def finish(self, job: Job, computed: int, held: int) -> Summary:
        """Assemble the segments into the output, release and (unless kept) empty the work folder:
        remaster's own files only, and the folder itself if remaster made it."""
        summary = self._assemble(job)
        elapsed = time.monotonic() - job.t0
        summary.computed_frames, summary.reused_frames, summary.seconds = computed, held, elapsed
        summary.fps = (computed + held) / elapsed if elapsed else 0.0
        summary.reused_segments = job.reused
        summary.notes = job.damage + summary.notes
        summary.computed_segments = [seg.index for seg in job.segments if seg.index not in job.reused]
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

    def compute(self, job: Job, todo: list[Segment]) -> tuple[int, int]:
        """Decode, upscale and encode the segments not done yet; returns the frames the model
        ran on, and those that reused a held drawing's result."""
        if not todo:
            return 0, 0
        upscaler = self.upscaler()
        media, fields, geometry, colour = job.media, job.fields, job.geometry, job.colour
        work, done = job.work, job.done
        video = media.video
        stop = threading.Event()
        failures: list[BaseException] = []
        decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
        upscaled: queue.Queue = queue.Queue(max(2, QUEUE_FRAMES // max(1, self.settings.batch)))
        fmt = VideoFormat(geometry.width, geometry.height, geometry.sar, fields.time_base, fields.rate)

        def filtered_segments() -> Iterator[tuple[Segment, DecodeStats, Iterator[Planes]]]:
            for seg in todo:  # each segment its own pass from the keyframe before it (fields.py)
                stats = DecodeStats()
                yield seg, stats, filtered_segment(media.path, video, seg, fields, stats)

        def decoder() -> None:
            # Progressive: consecutive segments in one decoding pass, which seeks only for a gap.
            progressive = fields.mode == "progressive"
            segments = decode_segments(media.path, video, todo) if progressive else filtered_segments()
            with contextlib.closing(segments):
                for seg, stats, frames in segments:
                    _put(decoded, ("start", seg, None), stop)
                    for planes in frames:
                        if not _put(decoded, ("frame", seg, planes), stop):
                            return
                    job.decoded.add(stats)
                    _put(decoded, ("end", seg, stats), stop)
            _put(decoded, None, stop)

        def encoder() -> None:
            writer = partial = None
            written: list[int] = []
            try:
                while (item := _get(upscaled, stop)) is not None:
                    kind, seg, payload = item
                    if kind == "start":
                        partial, written = work.partial_path(seg), []
                        writer = SegmentWriter(partial, self.settings.encoder, fmt, colour)
                        self.progress.segment_started(seg.index, fields.output_count(seg.frame_count))
                    elif kind == "frames":
                        frames, held = payload
                        for y, u, v, pts in frames:
                            writer.write(y, u, v, pts)
                        written.extend(pts for *_, pts in frames)
                        self.progress.frames_done(len(frames), held)
                    else:
                        writer.close()
                        writer = None
                        if not written:
                            raise DamagedInput(f"{media.path}: no frame of segment {seg.index} could be decoded")
                        _check_segment_file(partial, len(written))
                        done[seg.index] = work.commit(seg, partial, len(written), min(written), max(written))
                        self.progress.segment_done(seg.index, len(written))
            finally:
                if writer is not None:
                    writer.abort()
                if partial is not None:
                    partial.unlink(missing_ok=True)

        threads = [_Worker(decoder, failures, stop), _Worker(encoder, failures, stop)]
        for thread in threads:
            thread.start()
        counts = {"computed": 0, "reused": 0}
        try:
            # Frames waiting for the model, each marked whether it reuses the last computed
            # frame's result (a held drawing). Reuse never crosses a segment boundary, so that
            # a resumed run gives the same frames as an uninterrupted one.
            pending: list[tuple[Planes, bool]] = []
            reference: Planes | None = None
            last: tuple | None = None

            def flush(seg: Segment) -> None:
                nonlocal last
                computed = [planes for planes, reused in pending if not reused]
                results = iter(self._upscale(upscaler, computed, geometry) if computed else ())
                out = []
                for planes, reused in pending:
                    if not reused:
                        last = next(results)
                    out.append((*last[:3], planes.pts))
                held = len(pending) - len(computed)
                counts["computed"] += len(computed)
                counts["reused"] += held
                pending.clear()
                _put(upscaled, ("frames", seg, (out, held)), stop, failures)

            while (item := _get(decoded, stop, failures)) is not None:
                kind, seg, payload = item
                if kind == "frame":
                    reused = reference is not None and same_drawing(reference, payload, self.settings.reuse)
                    if not reused:
                        reference = payload
                    pending.append((payload, reused))
                    if sum(not r for _, r in pending) < self.settings.batch:
                        continue
                if pending:
                    flush(seg)
                if kind == "end":
                    _check_decoded(media, seg, payload, self.settings.allow_damaged)
                if kind != "frame":
                    reference = last = None
                    _put(upscaled, (kind, seg, payload), stop, failures)
            _put(upscaled, None, stop, failures)
            for thread in threads:
                thread.join()
            if failures:
                raise failures[0]
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join()
            if not done:  # nothing to resume, and abandon() removes the work folder it would name
                raise Interrupted("interrupted; nothing was finished") from None
            raise Interrupted(
                f"interrupted; {counted(len(done), 'segment')} finished and kept in {work.root}: "
                "run the same command again to resume"
            ) from None
        except BaseException:
            stop.set()
            for thread in threads:
                thread.join()
            raise
        return counts["computed"], counts["reused"]

    @torch.inference_mode()
    def _upscale(self, upscaler: Upscaler, batch: list[Planes], geometry: _OutputFrame) -> list:
        first = batch[0]
        device = upscaler.device
        spec = ColourSpec(geometry.source_matrix, first.full_range, first.bits, first.chroma_shift)
        y, u, v = (_stack([getattr(p, name) for p in batch], device) for name in ("y", "u", "v"))
        rgb = upscaler.upscale_rgb(planes_to_rgb(y, u, v, spec)).clamp_(0, 1)
        if geometry.resample:
            # Antialiased bicubic: the one resize is a reduction of the model's output.
            size = (geometry.height, geometry.width)
            rgb = F.interpolate(rgb, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
        else:
            rgb = rgb[..., : geometry.height, : geometry.width]  # an odd size loses its last row/column
        planes = [plane.cpu().numpy() for plane in rgb_to_planes(rgb, geometry.spec)]
        return [(planes[0][i], planes[1][i], planes[2][i], p.pts) for i, p in enumerate(batch)]

    def _assemble(self, job: Job) -> Summary:
        media, segments, done, output, work = job.media, job.segments, job.done, job.output, job.work
        output_format = job.output_format
        video_file = work.root / "video.mkv"
        frames = concatenate([done[seg.index] for seg in segments], video_file)
        # The finished file is written in the work folder (beside the output, on the same
        # filesystem) and renamed into place only once verified: the output path never
        # holds a partial file.
        same_fs = os.stat(work.root).st_dev == os.stat(output.parent.resolve()).st_dev
        staging = work.root if same_fs else output.parent
        tmp = staging / f".{output.stem}.partial{output.suffix}"
        time_range = None
        if self.settings.start is not None or self.settings.end is not None:
            v = media.video
            first, last = segments[0].first_pts, segments[-1].last_pts
            time_range = (v.seconds(first), v.seconds(last) + float(1 / v.rate))
        try:
            s = self.settings
            made_with = f"remaster {s.preset.name if s.model == s.preset.model else Path(s.model).stem}"
            notes = mux(video_file, media, tmp, output_format, work.root, time_range, made_with)
            for note in notes:
                self.progress.note(note)
            streams = _verify_output(tmp, video_file)
            if not self.settings.keep_workdir:
                work.record_output(tmp)
            commit_file(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
        return Summary(
            input=str(media.path),
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


class _Worker(threading.Thread):
    """A pipeline thread: its exception is kept for the main thread, and stops the others."""

    def __init__(self, target: Callable[[], None], failures: list[BaseException], stop: threading.Event):
        super().__init__(daemon=True)
        self._target_fn, self._failures, self._stop_event = target, failures, stop

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self._failures.append(exc)
            self._stop_event.set()


def _put(q: queue.Queue, item: object, stop: threading.Event, failures: list | None = None) -> bool:
    """Put, waiting for room, unless the pipeline is stopping; False if it is."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    if failures:
        raise failures[0]
    return False


def _get(q: queue.Queue, stop: threading.Event, failures: list | None = None) -> object:
    """Get, waiting for an item, unless the pipeline is stopping (then None, or the failure)."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    if failures:
        raise failures[0]
    return None


def _stack(planes: list[np.ndarray], device: torch.device) -> torch.Tensor:
    batch = np.stack(planes)
    if batch.dtype != np.uint8:  # torch has few uint16 kernels; 10- to 16-bit codes fit int32
        batch = batch.astype(np.int32)
    return torch.from_numpy(batch).to(device, non_blocking=True)


# Containers whose stored duration is written by the muxer from the real timestamps; in others
# (MPEG-TS/PS, AVI) FFmpeg estimates it from the bitrate, which says nothing about damage.
EXACT_DURATION_FORMATS = ("matroska", "mov")
DURATION_TOLERANCE = 0.25  # seconds: subtitle and audio tails end within this of the last packet


def _check_index(media: MediaInfo, allow_damaged: bool) -> list[str]:
    """A file cut short still opens; its index (frame count or duration) gives it away, and frames
    lost from the middle leave a hole in the timestamps (damage.py). Returns what --allow-damaged
    goes on past, one line each."""
    video = media.video
    problems = []
    if video.declared_frames and video.declared_frames > video.frame_count:
        listed, present = counted(video.declared_frames, "frame"), counted(video.frame_count, "is", "are")
        problems.append(f"its index lists {listed} but only {present} present")
    exact = media.format_name.startswith(EXACT_DURATION_FORMATS)
    slack = DURATION_TOLERANCE + float(1 / video.rate)
    if exact and video.declared_end is not None and video.declared_end > media.end_of_packets + slack:
        problems.append(
            f"it should run to {video.declared_end:.3f} s but its packets end at {media.end_of_packets:.3f} s"
        )
    holes = [hole.describe() for hole in find_holes(media)]
    if holes and not allow_damaged:
        raise DamagedInput(f"{media.path}: damaged: {'; '.join(holes)} (--allow-damaged to go on)")
    if problems and not allow_damaged:
        raise DamagedInput(f"{media.path}: damaged or truncated: {'; '.join(problems)} (--allow-damaged to go on)")
    return [f"{media.path.name}: damaged, went on: {line}" for line in holes + problems]


def _retimed_note(media: MediaInfo) -> list[str]:
    """Frames that shared a timestamp or came out of order are kept, each moved the least (probe.py)."""
    video = media.video
    if not video.decoded_pts:  # no frames shared a timestamp: the timeline is the file's own
        return []
    moves = [new - old for old, new in zip(video.decoded_pts, video.pts, strict=True) if new != old]
    if not moves:
        return []
    return [
        f"{media.path.name}: {counted(len(moves), 'frame')} shared a timestamp or came out of order; kept, each moved "
        f"by up to {video.seconds(max(moves)) * 1000:.0f} ms onto one increasing timeline"
    ]


def _check_decoded(media: MediaInfo, seg: Segment, stats: DecodeStats, allow_damaged: bool) -> None:
    if stats.frames < seg.frame_count and not allow_damaged:
        at = media.video.seconds(seg.first_pts - media.video.pts[0])
        raise DamagedInput(
            f"{media.path}: damaged: the segment at {at:.3f} s decoded {stats.frames} of its "
            f"{counted(seg.frame_count, 'frame')} ({counted(stats.errors, 'packet')} rejected by the decoder; "
            "--allow-damaged to go on)"
        )


def _check_segment_file(path: Path, frames: int) -> None:
    """Read back what the encoder wrote: every frame must be there before it becomes a checkpoint."""
    with av.open(str(path)) as container:
        count = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    if count != frames:
        raise RemasterError(f"{path}: the encoder wrote {count} of {counted(frames, 'frame')}")


def _verify_output(path: Path, video_file: Path) -> list[str]:
    """Probe the finished file before it takes the output's name: it must hold every frame of the
    new video, at the same times, and the streams it was given."""
    result, video = probe(path), probe(video_file).video
    got = result.video
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

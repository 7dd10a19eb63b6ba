"""The plan of one video job: everything decided before the first frame, computed once, as a value.

    probe (and the timeline copy) -> damage and size checks -> fields -> segments
          -> output frame, colour, encoder limits -> device and precision -> JobPlan

A JobPlan is frozen and picklable: the run, its checkpoints (the manifest records it and keys
the segments on `output_settings()`) and the Ray tasks all work from this one value, so that no
part of a run probes the input again or decides anything differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from remaster import __version__
from remaster.core.errors import DamagedInput, UsageError
from remaster.core.limits import check_pixels
from remaster.core.outputs import hidden_name, refuse_to_destroy
from remaster.core.precision import COMPUTED_PRECISIONS, Precision
from remaster.core.presets import Preset
from remaster.core.wording import counted
from remaster.engines.device import precision_name, resolve_device, resolve_precision
from remaster.engines.kinds import Engine
from remaster.engines.settings import EngineSettings
from remaster.media.pixels import pix_fmt_layout, square_pixel_size
from remaster.models.fidelity import auto_bf16
from remaster.video.colour import ColourSpec
from remaster.video.damage import find_holes
from remaster.video.encode import EncoderSettings, OutputColour, check_output_size
from remaster.video.fields import CYCLE, FieldMode, FieldPlan, detect_fields, plan_fields, snap_to_cycles
from remaster.video.normalise import probe_on_one_timeline
from remaster.video.probe import SD_MAX_HEIGHT, MediaInfo, VideoInfo, fingerprint, header_size
from remaster.video.reuse import ReuseMode
from remaster.video.segments import Segment, frames_in_range, plan_segments

OUTPUT_FORMATS = {".mkv": "matroska", ".mp4": "mp4"}
# AVCOL_* tag values (libavutil/pixfmt.h): BT.709 = 1; SMPTE 170M (NTSC) = 6; BT.470BG (PAL) = 5.
BT709_TAGS = (1, 1, 1)
# Containers whose stored duration is written by the muxer from the real timestamps; in others
# (MPEG-TS/PS, AVI) FFmpeg estimates it from the bitrate, which says nothing about damage.
EXACT_DURATION_FORMATS = ("matroska", "mov")
DURATION_TOLERANCE = 0.25  # seconds: subtitle and audio tails end within this of the last packet


@dataclass(frozen=True)
class VideoSettings:
    """What the user asked for (the command line, a preset, the queue); plan_job turns it into a JobPlan."""

    preset: Preset
    model: str  # the preset's model unless --model
    engine: EngineSettings
    encoder: EncoderSettings  # resolved: no empty fields
    batch: int | None = None  # frames per model call; None: as many as fit (Upscaler.batch_for)
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
    max_pixels: int | None = None  # largest frame area; None: $REMASTER_MAX_PIXELS or the default (core/limits.py)

    @property
    def made_with(self) -> str:
        """The end of the new video track's title: "remaster 2x-conservative"."""
        return f"remaster {self.preset.name if self.model == self.preset.model else Path(self.model).stem}"


@dataclass(frozen=True)
class OutputFrame:
    """A remastered frame as the encoder takes it: the model's output, cut or resampled to this
    size, in these planes (not the export's ExportFrame, made from a finished file by FFmpeg)."""

    width: int
    height: int
    spec: ColourSpec  # of the output planes
    source_matrix: str
    sar: Fraction  # of the output: the source's, or 1 with --square-pixels
    resample: bool  # --square-pixels: resize the model's output to (width, height)


@dataclass(frozen=True)
class JobPlan:
    """One input's job, decided once: what is read, what every segment computes, what is written."""

    source: Path  # the user's input, absolute
    output: Path  # absolute
    output_format: str  # matroska or mp4
    workdir: Path
    owned_workdir: bool  # the default folder beside the output (WorkDir's `owned`)
    fingerprint: str  # the input's (probe.fingerprint): a checkpoint is of this input or none
    media: MediaInfo  # media.path: the input, or its copy on one timeline in the work folder
    fields: FieldPlan
    segments: tuple[Segment, ...]
    frame: OutputFrame
    colour: OutputColour
    model: str
    # Device and precision resolved here ("cpu"/"cuda", never "auto"); the engine (torch or
    # ncnn) by Remasterer.fix_engine, which holds the model.
    engine: EngineSettings
    encoder: EncoderSettings
    reuse: ReuseMode
    batch: int | None  # None: chosen by the engine from free memory when the model is loaded
    allow_damaged: bool
    time_range: tuple[float, float] | None  # --start/--end, on the input's clock, for the mux's cut
    made_with: str  # ends the new video track's title
    damage: tuple[str, ...]  # what the run goes on past (damage, repaired timestamps): for the summary
    fields_found: str | None  # how `--fields auto` read the input, or None where the user chose

    @property
    def notes(self) -> tuple[str, ...]:
        """What the user is told before work: the damage gone past, and how the fields were found."""
        return self.damage + ((self.fields_found,) if self.fields_found else ())

    @property
    def frames(self) -> int:
        """Frames the output will have, as far as progress needs to know (fields.output_count)."""
        return self.fields.output_count(sum(seg.frame_count for seg in self.segments))

    def output_settings(self) -> dict[str, Any]:
        """What decides the output's pixels and bytes: a change to any of it invalidates checkpoints."""
        return {
            "remaster": __version__,
            "model": self.model,
            "precision": str(self.engine.precision),
            "engine": str(self.engine.engine),
            "encoder": asdict(self.encoder),
            "size": [self.frame.width, self.frame.height],
            "sar": str(self.frame.sar),
            "reuse": self.reuse,
            "colour": asdict(self.colour),
            "time_base": str(self.media.video.time_base),
            "fields": self.fields.describe(),
        }

    def describe(self) -> dict[str, Any]:
        """The plan as the manifest records it (the input's timeline is the probe's, not repeated)."""
        return {
            "source": str(self.source),
            "read_from": str(self.media.path),
            "output": str(self.output),
            "fields": self.fields.describe(),
            "segments": [[seg.index, seg.first_pts, seg.frame_count] for seg in self.segments],
            "device": self.engine.device,
            "engine": str(self.engine.engine),
            "batch": self.batch,
            "allow_damaged": self.allow_damaged,
            "time_range": self.time_range,
        }


def default_workdir(output: Path) -> Path:
    return output.with_name(hidden_name(output.name, ".remaster"))


def check_output(source: Path, output: Path, overwrite: bool) -> str:
    """Refuse outputs that would destroy something; returns the output's container format."""
    output_format = OUTPUT_FORMATS.get(output.suffix.lower())
    if output_format is None:
        raise UsageError(f"{output}: the output must end in {' or '.join(OUTPUT_FORMATS)}")
    refuse_to_destroy(source, output, overwrite)
    return output_format


def plan_job(
    source: Path,
    output: Path,
    settings: VideoSettings,
    scale: int,
    task_device: str | None = None,
    precisions: tuple[Precision, ...] = COMPUTED_PRECISIONS,
    status: Callable[[str], None] = lambda message: None,
    min_side: Callable[[], int] = lambda: 1,
) -> JobPlan:
    """Probe `source` and decide everything about its job. `scale`, `precisions` and `min_side`
    (the smallest picture side it takes, asked only once the other checks pass: it may load the
    model): the model's (the caller holds the model: Remasterer.model_scale). `task_device` ("cpu"
    or "cuda"): the device the segments will run on when that is not this machine (Ray tasks).
    `status` is told each step that can take seconds, as it begins."""
    s = settings
    # Absolute: FFmpeg reads a relative name such as "ep: 1.mkv" as a protocol ("ep:").
    source, output = source.absolute(), output.absolute()
    output_format = check_output(source, output, s.overwrite)
    root = s.workdir or default_workdir(output)
    # Before the probe decodes a frame: the picture the header claims is what a decoder allocates.
    check_pixels(source, *header_size(source), s.max_pixels)
    # media.path is the input, or its copy on one timeline in the work folder (a timestamp reset).
    status("probing")
    media, joined = probe_on_one_timeline(source, root, owned=s.workdir is None)
    video = media.video
    check_pixels(source, video.width, video.height, s.max_pixels)
    damage = tuple(joined + _check_index(media, s.allow_damaged) + _retimed_note(media))
    frames = frames_in_range(video, s.start, s.end)
    if s.fields == FieldMode.AUTO:
        status("detecting fields")
    report = detect_fields(media.path, video) if s.fields == FieldMode.AUTO else None
    fields = plan_fields(s.fields, report, video, s.field_rate)
    found = f"{source.name}: fields {report.describe()}: {fields.describe()}" if report is not None else None
    if fields.mode == FieldMode.IVTC:
        first = snap_to_cycles(frames, video)
        frames = video.pts[first : video.pts.index(frames[-1]) + 1]
    segments = plan_segments(video, s.segment_seconds, frames, CYCLE if fields.mode == FieldMode.IVTC else None)
    _check_model_side(source, video, s.model, min_side)  # before the encoder's limits: the model's come first
    frame = _output_frame(video, scale, s.encoder.pix_fmt, s.square_pixels)
    check_output_size(source, s.encoder, frame.width, frame.height)
    return JobPlan(
        source=source,
        output=output,
        output_format=output_format,
        workdir=root,
        owned_workdir=s.workdir is None,
        fingerprint=fingerprint(source),
        media=media,
        fields=fields,
        segments=tuple(segments),
        frame=frame,
        colour=output_colour(video, frame.height),
        model=s.model,
        engine=resolve_engine(s.engine, s.model, task_device, precisions),
        encoder=s.encoder,
        reuse=s.reuse,
        batch=s.batch,
        allow_damaged=s.allow_damaged,
        time_range=_time_range(video, segments) if s.start is not None or s.end is not None else None,
        made_with=s.made_with,
        damage=damage,
        fields_found=found,
    )


def _check_model_side(source: Path, video: VideoInfo, model: str, min_side: Callable[[], int]) -> None:
    """Refuse a picture smaller than the model takes, here rather than at its first frame, where
    the refusal raced the encoder's own (an x265 that will not open at the output's size)."""
    side = min_side()
    if min(video.width, video.height) < side:
        raise UsageError(f"{source}: {video.width}x{video.height} is too small for {model} (at least {side} px a side)")


def resolve_engine(
    engine: EngineSettings, model: str, task_device: str | None, precisions: tuple[Precision, ...] = COMPUTED_PRECISIONS
) -> EngineSettings:
    """The one device and precision every segment runs at, decided here and nowhere else.

    Left to each Ray node, `auto` could give fp16 on a GPU node, bf16 on a CPU node with AVX-512
    BF16 and fp32 on an older one: one episode with segments at three precisions, and a
    checkpoint record naming only one. An explicit precision on another machine's device is
    that machine's to check (its Upscaler refuses bf16 on a CPU without it). `precisions`: those
    the model runs in (a community model that breaks in fp16 gets bf16 or fp32 on a GPU).
    """
    if task_device is None:
        device = resolve_device(engine.device, engine.engine)
        if engine.engine == Engine.AUTO and device.type == "cpu":
            # `auto` on a CPU measures engines and precisions together (engines/choice.py):
            # Remasterer.fix_engine does that next and leaves a precision by name.
            return replace(engine, device=str(device))
        # ncnn on a CPU runs fp32 only: its `auto` is fp32, never bf16.
        bf16 = auto_bf16(model) and engine.engine != Engine.NCNN
        precision = precision_name(resolve_precision(engine.precision, device, bf16, precisions))
        return replace(engine, device=str(device), precision=precision)
    precision = engine.precision
    if precision == Precision.AUTO:
        precision = precision_name(
            resolve_precision(Precision.AUTO, torch.device(task_device), auto_bf16(model), precisions)
        )
    return replace(engine, device=task_device, precision=precision)


def output_colour(video: VideoInfo, height: int) -> OutputColour:
    """HD and UHD output is BT.709, converted and tagged; SD output keeps the source's matrix."""
    if height > SD_MAX_HEIGHT or video.matrix == "bt709":
        return OutputColour("bt709", *BT709_TAGS)
    tags = video.tagged
    if video.matrix == "bt2020nc":
        return OutputColour("bt2020nc", 9, tags["color_primaries"] or 9, tags["color_trc"] or 14)
    pal = 5 if video.height == 576 else 6
    return OutputColour("bt601", tags["colorspace"] or pal, tags["color_primaries"] or pal, tags["color_trc"] or 6)


def _output_frame(video: VideoInfo, scale: int, pix_fmt: str, square_pixels: bool) -> OutputFrame:
    shift, bits = pix_fmt_layout(pix_fmt)
    width, height, sar = video.width * scale, video.height * scale, video.sar
    if square_pixels and sar != 1:
        square_width, square_height = square_pixel_size(Fraction(width), Fraction(height), sar)
        width, height, sar = round(square_width), round(square_height), Fraction(1)
    # Encoders refuse 4:2:0/4:2:2 pictures of odd size: drop the last row or column.
    width, height = width - width % (1 << shift[0]), height - height % (1 << shift[1])
    resample = (width, height) != (video.width * scale, video.height * scale) and sar == 1 and video.sar != 1
    matrix = output_colour(video, height).matrix
    return OutputFrame(width, height, ColourSpec(matrix, False, bits, shift), video.matrix, sar, resample)


def _time_range(video: VideoInfo, segments: list[Segment]) -> tuple[float, float]:
    """The remastered part on the input's clock: the other streams are cut to it."""
    return video.seconds(segments[0].first_pts), video.seconds(segments[-1].last_pts) + float(1 / video.rate)


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

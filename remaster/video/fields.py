"""Fields: tell progressive, interlaced and telecined video apart, and make them progressive.

DVD and TV anime is often stored as 29.97 interlaced frames: truly interlaced (each field a
moment of its own: deinterlace with bwdif, at the frame or the field rate) or hard-telecined
film (3:2 pulldown of 23.976 frames: match the fields back together with fieldmatch, and drop
the one duplicate in every five frames with decimate, back to 24000/1001). PyAV frames carry an
`interlaced_frame` flag but telecined frames carry it too, so the kind is measured with idet.

Filters need neighbouring frames, so a segment's graph is fed from frames before its start
(the decoder's seek margin) and keeps only the outputs that belong to the segment. Outputs are
matched to inputs by order: bwdif gives 1 (or 2) frames per input, decimate 4 per cycle of 5
inputs. For that, a graph for inverse telecine always starts on a cycle boundary of the whole
file (a frame index that is a multiple of 5), so that every segment drops the same frames a
single run over the whole file would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av

from remaster.core.modes import parse_mode
from remaster.media.pixels import sample_dtype
from remaster.video.decode import DecodeStats, Planes, decoded_frames, frame_to_planes
from remaster.video.frames import plane_view
from remaster.video.probe import VideoInfo
from remaster.video.segments import Segment

CYCLE = 5  # 3:2 pulldown: 4 film frames become 5 video frames (10 fields)
FILM_RATE = Fraction(24000, 1001)
# How much of the file idet looks at: enough frames for its statistics, from the middle
# (openings often start on a still title card).
DETECT_FRAMES = 240
# idet's verdicts over the sample (see docs/video.md, "Interlaced and telecined video"):
# below this share of frames judged interlaced, the video is progressive;
MIN_INTERLACED_SHARE = 0.2
# telecine repeats one field in 2 of every 5 frames (40%); true interlace never does. A still
# scene repeats nothing either way, so the bar is well below 40%.
MIN_REPEATED_SHARE = 0.12


class FieldMode(StrEnum):
    AUTO = "auto"  # detect with idet, then one of the others
    PROGRESSIVE = "progressive"  # the frames as they are
    DEINTERLACE = "deinterlace"  # bwdif, at the frame or (--field-rate) the field rate
    IVTC = "ivtc"  # inverse telecine: fieldmatch and decimate back to 24000/1001


parse_fields = parse_mode(FieldMode, "--fields")


@dataclass(frozen=True)
class FieldReport:
    kind: str  # progressive, interlaced or telecined
    interlaced_share: float  # frames idet judged TFF or BFF
    repeated_share: float  # frames with a repeated field
    frames: int  # frames looked at

    def describe(self) -> str:
        return (
            f"{self.kind} (idet over {self.frames} frames: {self.interlaced_share:.0%} interlaced, "
            f"{self.repeated_share:.0%} with a repeated field)"
        )


@dataclass(frozen=True)
class FieldPlan:
    """What happens to the fields, and the timeline of the frames that come out."""

    mode: FieldMode  # progressive, deinterlace or ivtc
    field_rate: bool  # deinterlace: a frame per field (59.94p from 29.97i)
    time_base: Fraction
    rate: Fraction

    @property
    def filters(self) -> list[tuple[str, str]]:
        if self.mode == FieldMode.DEINTERLACE:
            return [("bwdif", f"mode={'send_field' if self.field_rate else 'send_frame'}:parity=auto:deint=all")]
        if self.mode == FieldMode.IVTC:
            # fieldmatch pairs the fields of each film frame again; bwdif mends the few frames
            # it cannot match (edits that break the cadence); decimate drops the duplicate.
            return [
                ("fieldmatch", "order=auto:combmatch=full"),
                ("bwdif", "mode=send_frame:parity=auto:deint=interlaced"),
                # scthresh=100: no scene-change rule. By default, a cycle whose duplicate differs
                # by more than dupthresh after lossy coding loses its scene-change frame instead
                # (measured: the first film frame of a DVD-like clip); one duplicate per cycle
                # is what hard telecine guarantees, so the most similar frame always goes.
                ("decimate", f"cycle={CYCLE}:scthresh=100"),
            ]
        return []

    def describe(self) -> str:
        if self.mode == FieldMode.IVTC:
            return f"inverse telecine (fieldmatch, decimate) to {self.rate} fps"
        if self.mode == FieldMode.DEINTERLACE:
            return f"deinterlace (bwdif) at the {'field' if self.field_rate else 'frame'} rate, {self.rate} fps"
        return "progressive: no field processing"

    def output_count(self, source_frames: int) -> int:
        """Frames that come out of `source_frames` frames (for progress; the last cycle may differ)."""
        if self.mode == FieldMode.IVTC:
            return source_frames * (CYCLE - 1) // CYCLE
        return source_frames * (2 if self.mode == FieldMode.DEINTERLACE and self.field_rate else 1)


class FilterChain:
    """A PyAV filter graph: frames in, frames out, in order."""

    def __init__(self, video: VideoInfo, filters: list[tuple[str, str]], pix_fmt: str):
        self.graph = av.filter.Graph()
        # The buffer source needs the frame rate: decimate derives its output rate from it.
        source = self.graph.add(
            "buffer",
            f"video_size={video.width}x{video.height}:pix_fmt={pix_fmt}:time_base={video.time_base}"
            f":pixel_aspect={video.sar.numerator}/{video.sar.denominator}:frame_rate={video.rate}",
        )
        chain = [source] + [self.graph.add(name, args) for name, args in filters] + [self.graph.add("buffersink")]
        for a, b in zip(chain, chain[1:], strict=False):
            a.link_to(b)
        self.graph.configure()

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Feed one frame (None: the end) and take every frame that is ready."""
        self.graph.push(frame)
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return out


def detect_fields(path: Path, video: VideoInfo) -> FieldReport:
    """Run idet over DETECT_FRAMES frames from the middle third of the video."""
    start = video.pts[min(len(video.pts) - 1, len(video.pts) // 3)]
    if len(video.pts) - len(video.pts) // 3 < DETECT_FRAMES:
        start = video.pts[0]
    chain = FilterChain(video, [("idet", "")], video.pix_fmt)
    last = None
    seen = 0
    for frame in decoded_frames(path, video, start, DecodeStats()):
        if frame.pts is None or frame.pts < start:
            continue
        outputs = chain.push(frame)
        last = outputs[-1] if outputs else last
        seen += 1
        if seen >= DETECT_FRAMES:
            break
    outputs = chain.push(None)
    last = outputs[-1] if outputs else last
    meta = last.metadata if last is not None else {}

    def count(key: str) -> float:
        return float(meta.get(f"lavfi.idet.{key}", 0))

    tff, bff, progressive = count("multiple.tff"), count("multiple.bff"), count("multiple.progressive")
    neither, top, bottom = count("repeated.neither"), count("repeated.top"), count("repeated.bottom")
    interlaced_share = (tff + bff) / max(1.0, tff + bff + progressive)
    repeated_share = (top + bottom) / max(1.0, neither + top + bottom)
    if interlaced_share < MIN_INTERLACED_SHARE:
        kind = "progressive"
    elif repeated_share >= MIN_REPEATED_SHARE:
        kind = "telecined"
    else:
        kind = "interlaced"
    return FieldReport(kind, interlaced_share, repeated_share, seen)


def plan_fields(mode: FieldMode, report: FieldReport | None, video: VideoInfo, field_rate: bool) -> FieldPlan:
    """--fields auto follows the detection; an explicit mode wins."""
    if mode == FieldMode.AUTO:
        kinds = {"progressive": FieldMode.PROGRESSIVE, "interlaced": FieldMode.DEINTERLACE, "telecined": FieldMode.IVTC}
        mode = kinds[report.kind]
    if mode == FieldMode.IVTC:
        return FieldPlan(FieldMode.IVTC, False, 1 / FILM_RATE, FILM_RATE)
    if mode == FieldMode.DEINTERLACE:
        # bwdif counts in half the input's time base, at both rates.
        return FieldPlan(FieldMode.DEINTERLACE, field_rate, video.time_base / 2, video.rate * (2 if field_rate else 1))
    return FieldPlan(FieldMode.PROGRESSIVE, False, video.time_base, video.rate)


def snap_to_cycles(frames: tuple[int, ...], video: VideoInfo) -> int:
    """Inverse telecine works on whole cycles of the file: the index of `frames[0]` rounded down."""
    first = video.pts.index(frames[0])
    return first - first % CYCLE


def _black_frames(like: av.VideoFrame, count: int, video: VideoInfo) -> list[av.VideoFrame]:
    """`count` black frames of `like`'s format, timed one frame apart just before it."""
    step = round(1 / (video.rate * video.time_base))
    frames = []
    for i in range(count):
        frame = av.VideoFrame(like.width, like.height, like.format.name)
        bits = max(c.bits for c in like.format.components)
        dtype = sample_dtype(bits)
        for i_plane, plane in enumerate(frame.planes):  # limited-range black, neutral chroma
            plane_view(plane, dtype)[:] = (16 if i_plane == 0 else 128) << (bits - 8)
        frame.pts = like.pts - (count - i) * step
        frame.time_base = like.time_base
        frames.append(frame)
    return frames


def filtered_segment(
    path: Path, video: VideoInfo, segment: Segment, plan: FieldPlan, stats: DecodeStats
) -> Iterator[Planes]:
    """The segment's frames through the plan's filters, each with its pts in plan.time_base."""
    index_of = {pts: i for i, pts in enumerate(video.pts)}
    first, last = index_of[segment.first_pts], index_of[segment.last_pts]
    if plan.mode == FieldMode.IVTC:
        # Start one whole cycle early, on a cycle boundary of the file, so that decimate drops
        # the same frame of every cycle as a run over the whole file would. Before the file's
        # first frame, that cycle is black: decimate compares each frame with the one before,
        # and would take the very first frame (compared with itself) for a duplicate.
        feed_from = first - CYCLE
        per_input, per_output = CYCLE, CYCLE - 1
        film_base = round(video.seconds(video.pts[0]) * FILM_RATE)
    else:
        feed_from = max(0, first - 4)  # bwdif looks two frames back and forth
        per_input, per_output = 1, 2 if plan.field_rate else 1
    chain: FilterChain | None = None
    produced = 0  # frames out of the filters so far

    def owned(outs: list[av.VideoFrame]) -> Iterator[Planes]:
        nonlocal produced
        for out in outs:
            k, produced = produced, produced + 1
            source = feed_from + (k // per_output) * per_input  # the first input it came from
            if not first <= source <= last:
                continue
            if plan.mode == FieldMode.IVTC:  # the film frame's number on a clean 24000/1001 clock
                out.pts = film_base + (feed_from // CYCLE) * per_output + k
            yield frame_to_planes(out, video.full_range)

    wanted = set(segment.pts)
    for frame in decoded_frames(path, video, video.pts[max(0, feed_from)], stats):
        index = index_of.get(frame.pts)
        if index is None or index < feed_from:
            continue
        if frame.pts in wanted:
            stats.frames += 1
        if chain is None:
            chain = FilterChain(video, plan.filters, frame.format.name)
            for lead_in in _black_frames(frame, -feed_from, video):
                yield from owned(chain.push(lead_in))
        if index > last + 2 * CYCLE:  # enough look-ahead for every filter: flush and stop
            break
        yield from owned(chain.push(frame))
    if chain is not None:
        yield from owned(chain.push(None))

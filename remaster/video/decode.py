"""Decode: the frames of each segment, exactly those the packet scan listed, as Y'CbCr planes.

Segments that follow each other are decoded in one pass (`decode_segments`): a source with one
keyframe is read once, not once from the start for every segment."""

from __future__ import annotations

import bisect
import contextlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from remaster.media.pixels import planar_layout, sample_dtype
from remaster.video.frames import plane_view
from remaster.video.probe import MAX_REORDER_FRAMES, VideoInfo, open_media
from remaster.video.segments import Segment

# Seeking lands on the keyframe before the target, except in MPEG-PS/TS and AVI, where it may
# land a GOP late (DESIGN.md section 6). Asking for a point 2 s early and dropping frames by pts
# is exact in all of them.
SEEK_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class Planes:
    """One frame as integer planes, with what is needed to turn them into RGB."""

    pts: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bits: int
    chroma_shift: tuple[int, int]
    full_range: bool


def frame_to_planes(frame: av.VideoFrame, full_range: bool) -> Planes:
    layout = planar_layout(frame.format.name)
    if layout is None:
        # nv12, p010, gray, RGB...: swscale rearranges them into 16-bit 4:4:4; rare in anime sources.
        frame = frame.reformat(format="yuv444p16le")
        layout = ((0, 0), 16)
    shift, bits = layout
    dtype = sample_dtype(bits)
    planes = []
    for plane in frame.planes:
        # Rows are padded to line_size bytes; view the padded buffer, then crop to the picture.
        rows = plane_view(plane, dtype)
        planes.append(rows[:, : plane.width].copy())
    y, u, v = planes[:3]
    return Planes(frame.pts, y, u, v, bits, shift, full_range or frame.format.name.startswith("yuvj"))


@dataclass
class DecodeStats:
    frames: int = 0
    errors: int = 0  # packets the decoder rejected: a damaged file
    packets: int = 0  # video packets read (demuxed), the flush at the end not counted
    opens: int = 0  # times the file was opened to decode from a keyframe: a new pass, or a seek tried again

    def add(self, other: DecodeStats) -> None:
        self.frames += other.frames
        self.errors += other.errors
        self.packets += other.packets
        self.opens += other.opens


def decoded_frames(path: Path, video: VideoInfo, first_pts: int, stats: DecodeStats) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order, each with its pts on the probe's timeline (for a file
    whose frames share timestamps, the repaired one: VideoInfo.decoded_pts), starting at or before
    `first_pts`; see _frames_from_keyframe."""
    frames = _frames_from_keyframe(path, video, first_pts, stats)
    return _on_repaired_timeline(frames, video) if video.decoded_pts else frames


def _frames_from_keyframe(
    path: Path, video: VideoInfo, first_pts: int, stats: DecodeStats
) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order, each with the pts the file gives, from the keyframe at
    or before `first_pts`.

    `first_pts` may be any frame: decoding starts at the keyframe at or before it (from the
    packet scan), for a file with a single keyframe at the very start. Seeks SEEK_MARGIN_SECONDS
    before that keyframe; if the seek still lands after it (MPEG-PS/TS and AVI can land a GOP
    late), it tries again from further back, and at last from the start.
    Frames the decoder gives no pts (AVI without timestamps) take theirs from the packet scan,
    in order, which is only sound when decoding from the start: such files are never seeked.
    """
    anchor = keyframe_before(video, first_pts)
    for margin in (SEEK_MARGIN_SECONDS, 5 * SEEK_MARGIN_SECONDS, None):
        target = None if margin is None else anchor - round(margin / video.time_base)
        with open_media(path) as container:
            stats.opens += 1
            stream = container.streams[video.index]
            stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the model
            seeked = video.has_pts and target is not None and target > video.pts[0]
            if seeked:
                container.seek(target, stream=stream, backward=True)
            index = 0
            landed_late = False
            for packet in container.demux(stream):
                if packet.size:
                    stats.packets += 1
                try:
                    frames = packet.decode()  # the final empty packet flushes the decoder's delayed frames
                except av.FFmpegError:
                    stats.errors += 1
                    continue
                for frame in frames:
                    if frame.pts is None and not seeked and index < len(video.pts):
                        frame.pts = video.pts[index]
                    index += 1
                    # Past the keyframe, the frames up to `first_pts` may refer to packets never read.
                    if seeked and index == 1 and (frame.pts is None or frame.pts > anchor):
                        landed_late = True
                        break
                    yield frame
                if landed_late:
                    break
            if not landed_late:
                return


def keyframe_before(video: VideoInfo, pts: int) -> int:
    """The last keyframe of the packet scan at or before `pts` (the first frame if none is)."""
    at = bisect.bisect_right(video.keyframe_pts, pts)
    return video.keyframe_pts[at - 1] if at else video.pts[0]


def decode_segment(path: Path, video: VideoInfo, segment: Segment, stats: DecodeStats) -> Iterator[Planes]:
    """Yield the segment's frames in presentation order; fewer than segment.frame_count means damage."""
    with contextlib.closing(decode_segments(path, video, [segment])) as segments:
        for _, own, frames in segments:
            try:
                yield from frames
            finally:
                stats.add(own)


def decode_segments(
    path: Path, video: VideoInfo, segments: Sequence[Segment]
) -> Iterator[tuple[Segment, DecodeStats, Iterator[Planes]]]:
    """Each segment, in order, with its own DecodeStats and an iterator of its frames.

    Segments whose frames follow each other in the file are decoded in one pass: it seeks (or
    opens the file) only for the first segment and after a gap (a segment left out, such as one
    an earlier run finished). Like itertools.groupby, a segment's frames are to be read before
    the next segment is asked for; frames not read then are dropped. Its stats are complete once
    its frames are read to the end (or the iterator closed): frames given; packets, errors and
    opens counted while it was the segment decoded.
    """
    begin = 0
    for end in range(1, len(segments) + 1):
        if end == len(segments) or not _follows(video, segments[end - 1], segments[end]):
            yield from _one_pass(path, video, segments[begin:end])
            begin = end


def _follows(video: VideoInfo, before: Segment, after: Segment) -> bool:
    """`after` starts at the frame just after `before`'s last one."""
    return bisect.bisect_right(video.pts, before.last_pts) == bisect.bisect_left(video.pts, after.first_pts)


def _one_pass(
    path: Path, video: VideoInfo, run: Sequence[Segment]
) -> Iterator[tuple[Segment, DecodeStats, Iterator[Planes]]]:
    """Consecutive segments from one decoding pass, which starts at the keyframe before the first."""
    whole = DecodeStats()  # the pass's counts; each segment gets what was counted while it was decoded
    frames = decoded_frames(path, video, run[0].first_pts, whole)
    owner = {pts: k for k, segment in enumerate(run) for pts in segment.pts}
    early: deque[av.VideoFrame] = deque()  # frames of later segments, decoded before this one was complete

    def own_frames(k: int, stats: DecodeStats) -> Iterator[Planes]:
        nonlocal early
        wanted = set(run[k].pts)
        errors, packets, opens = whole.errors, whole.packets, whole.opens
        held, early = early, deque()
        past = 0  # frames decoded past the segment while it still misses some
        try:
            # Decoders give frames out of presentation order only by their reorder buffer: a frame
            # not seen MAX_REORDER_FRAMES frames past the segment is lost (damage), and the pass
            # goes on with the next segment.
            while wanted and past <= MAX_REORDER_FRAMES:
                frame = held.popleft() if held else next(frames, None)
                if frame is None:
                    return  # the end of the file
                at = owner.get(frame.pts, -1)
                if at == k and frame.pts in wanted:
                    wanted.discard(frame.pts)
                    stats.frames += 1
                    yield frame_to_planes(frame, video.full_range)
                elif at > k:
                    early.append(frame)
                    past += 1
                elif frame.pts is not None and frame.pts > run[k].last_pts:  # after the pass's last segment
                    past += 1
                # else: before the segment (after a seek), or not a frame the packet scan listed
        finally:
            early.extend(held)  # held frames not looked at come after those put aside from it
            stats.errors, stats.packets = whole.errors - errors, whole.packets - packets
            stats.opens = whole.opens - opens

    try:
        for k, segment in enumerate(run):
            stats = DecodeStats()
            segment_frames = own_frames(k, stats)
            yield segment, stats, segment_frames
            segment_frames.close()  # frames the caller left unread are dropped
    finally:
        frames.close()  # the file too, now rather than when collected


def _on_repaired_timeline(frames: Iterator[av.VideoFrame], video: VideoInfo) -> Iterator[av.VideoFrame]:
    """Give frames of a file whose frames share timestamps their pts on the probe's repaired timeline.

    The first frame decoded (the keyframe the seek landed on) is found among the frames with its
    pts, by being a keyframe; each next frame is the next in the decoder's output order, as the
    probe's full decode saw it. A frame that does not fit is looked up again by its pts.
    """
    positions: dict[int, list[int]] = {}
    for i, stamp in enumerate(video.decoded_pts):
        positions.setdefault(stamp, []).append(i)
    position: int | None = None  # of the last frame given, in the decoder's output order
    for frame in frames:
        following = 0 if position is None else position + 1
        if following >= len(video.decoded_pts) or video.decoded_pts[following] != frame.pts or position is None:
            # After a seek, or out of step: the frames with this pts; the keyframe among them first.
            candidates = [i for i in positions.get(frame.pts, []) if position is None or i > position]
            matching = [i for i in candidates if video.decoded_keys[i] == frame.key_frame]
            if not candidates:
                continue  # not a frame the probe saw: left out, and counted as missing
            following = (matching or candidates)[0]
        position = following
        frame.pts = video.pts[position]
        yield frame

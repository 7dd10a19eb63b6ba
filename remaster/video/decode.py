"""Decode: the frames of one segment, exactly those the packet scan listed, as Y'CbCr planes."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from remaster.video.frames import plane_view
from remaster.video.probe import VideoInfo, open_media
from remaster.video.segments import Segment

# Planar Y'CbCr layouts we read directly, with log2 chroma subsampling (x, y).
_SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}
_PLANAR_YUV = re.compile(r"yuvj?(420|422|444)p(?:(\d+)le)?")
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


def _layout(format_name: str) -> tuple[tuple[int, int], int] | None:
    """yuv420p10le -> ((1, 1), 10); None for anything that is not planar little-endian Y'CbCr."""
    match = _PLANAR_YUV.fullmatch(format_name)
    if match is None:
        return None
    return _SUBSAMPLING[match[1]], int(match[2] or 8)


def frame_to_planes(frame: av.VideoFrame, full_range: bool) -> Planes:
    layout = _layout(frame.format.name)
    if layout is None:
        # nv12, p010, gray, RGB...: swscale rearranges them into 16-bit 4:4:4; rare in anime sources.
        frame = frame.reformat(format="yuv444p16le")
        layout = ((0, 0), 16)
    shift, bits = layout
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
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


def decoded_frames(path: Path, video: VideoInfo, first_pts: int, stats: DecodeStats) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order, each with its pts, starting at or before `first_pts`.

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
            stream = container.streams[video.index]
            stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the model
            seeked = video.has_pts and target is not None and target > video.pts[0]
            if seeked:
                container.seek(target, stream=stream, backward=True)
            index = 0
            landed_late = False
            for packet in container.demux(stream):
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
    wanted = set(segment.pts)
    frames = decoded_frames(path, video, segment.first_pts, stats)
    if video.decoded_pts:
        frames = _on_repaired_timeline(frames, video)
    for frame in frames:
        if frame.pts not in wanted:  # before the segment (after a seek), or after it
            continue
        wanted.discard(frame.pts)
        stats.frames += 1
        yield frame_to_planes(frame, video.full_range)
        if not wanted:
            return


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

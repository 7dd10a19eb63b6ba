"""Decode: the frames of one segment, exactly those the packet scan listed, as Y'CbCr planes."""

from __future__ import annotations

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


def decode_segment(path: Path, video: VideoInfo, segment: Segment, stats: DecodeStats) -> Iterator[Planes]:
    """Yield the segment's frames in presentation order; fewer than segment.frame_count means damage."""
    wanted = set(segment.pts)
    with open_media(path) as container:
        stream = container.streams[video.index]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the model
        target = segment.first_pts - round(SEEK_MARGIN_SECONDS / video.time_base)
        if target > video.pts[0]:
            container.seek(target, stream=stream, backward=True)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()  # the final empty packet flushes the decoder's delayed frames
            except av.FFmpegError:
                stats.errors += 1
                continue
            for frame in frames:
                if frame.pts not in wanted:  # before the segment (after a seek), or after it
                    continue
                wanted.discard(frame.pts)
                stats.frames += 1
                yield frame_to_planes(frame, video.full_range)
                if not wanted:
                    return

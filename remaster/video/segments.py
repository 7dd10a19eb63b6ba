"""Plan segments: the unit of work, of checkpointing and of resuming.

Segments are cut every `--segment-seconds` of the file's clock, at any frame: a source with
one keyframe (x264 without scene cuts, intra refresh, long broadcast GOPs) is cut as finely as
any other. Each segment lists the pts of the frames it must produce, taken from the packet scan;
decoding it starts at the keyframe before its first frame and drops what comes before
(video/decode.py). A killed run loses at most the segment in progress.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction

from remaster.core.errors import UsageError
from remaster.video.probe import VideoInfo


@dataclass(frozen=True)
class Segment:
    index: int
    pts: tuple[int, ...]  # the frames it produces, in presentation order

    @property
    def first_pts(self) -> int:
        return self.pts[0]

    @property
    def last_pts(self) -> int:
        return self.pts[-1]

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    @property
    def key(self) -> str:
        """What identifies the segment's work across runs, even if the plan around it changes."""
        return f"{self.first_pts}+{self.frame_count}"


def frames_in_range(video: VideoInfo, start: float | None, end: float | None) -> tuple[int, ...]:
    """The pts of the frames shown from `start` up to (not including) `end`, in seconds of the file's clock."""
    pts = video.pts
    lo = 0 if start is None else bisect.bisect_left(pts, _to_pts(video, start))
    hi = len(pts) if end is None else bisect.bisect_left(pts, _to_pts(video, end))
    if lo >= hi:
        first, last = video.seconds(pts[0]), video.seconds(pts[-1])
        raise UsageError(f"no video frames between --start and --end (the video runs {first:.3f} s to {last:.3f} s)")
    return pts[lo:hi]


def _to_pts(video: VideoInfo, seconds: float) -> int:
    # Times given by the user count from the first frame, as players show them.
    return video.pts[0] + round(seconds / video.time_base)


def plan_segments(video: VideoInfo, seconds: float, frames: tuple[int, ...], cycle: int | None = None) -> list[Segment]:
    """Cut `frames` into segments of `seconds`, within one frame, wherever the keyframes are.

    Segment k holds the frames shown from `frames[0] + k * seconds` up to (not including) the
    next such time: a grid on the file's clock, so a segment of a variable-rate file is as long
    as any other, and a grid slot with no frame (a gap longer than `seconds`) is no segment.

    With a `cycle` (inverse telecine), cuts go on the file's cycle boundaries instead: frame
    indices that are multiples of it, so that no cycle of the pulldown pattern is split; each
    segment is then at least `seconds` long.
    """
    if seconds <= 0:
        raise UsageError(f"--segment-seconds {seconds}: want a positive number")
    if cycle is not None:
        return _plan_on_cycles(video, round(seconds / video.time_base), frames, cycle)
    # In pts units, exact (the decimal the user typed), so the grid does not drift over an episode.
    step = Fraction(str(seconds)) / video.time_base
    segments: list[Segment] = []
    begin = 0
    while begin < len(frames):
        # The slot of the grid that frames[begin] falls in, and the first frame of the next slot.
        slot = int((frames[begin] - frames[0]) / step) + 1
        end = bisect.bisect_left(frames, frames[0] + math.ceil(slot * step), lo=begin + 1)
        segments.append(Segment(len(segments), frames[begin:end]))
        begin = end
    return segments


def _plan_on_cycles(video: VideoInfo, step: int, frames: tuple[int, ...], cycle: int) -> list[Segment]:
    """Cut only where a cycle of the whole file begins, once at least `step` (pts) has passed."""
    offset = video.pts.index(frames[0])
    segments: list[Segment] = []
    begin = 0
    for i in range(1, len(frames)):
        if (offset + i) % cycle == 0 and frames[i] - frames[begin] >= step:
            segments.append(Segment(len(segments), frames[begin:i]))
            begin = i
    segments.append(Segment(len(segments), frames[begin:]))
    return segments

"""Plan segments: the unit of work, of checkpointing and of resuming.

Each segment starts at a source keyframe (so that decoding it needs no earlier packets) and
lists the pts of the frames it must produce, taken from the packet scan. A killed run loses at
most the segment in progress.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from remaster.errors import UsageError
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
    """Cut `frames` into segments of at least `seconds`, each starting at a source keyframe
    (the first one starts at the first frame wanted, which a --start may put between keyframes).

    With a `cycle` (inverse telecine), cuts go on the file's cycle boundaries instead: frame
    indices that are multiples of it, so that no cycle of the pulldown pattern is split.
    """
    if seconds <= 0:
        raise UsageError(f"--segment-seconds {seconds}: want a positive number")
    step = round(seconds / video.time_base)
    if cycle is None:
        keyframes = set(video.keyframe_pts)
        may_cut = [p in keyframes for p in frames]
    else:
        offset = video.pts.index(frames[0])
        may_cut = [(offset + i) % cycle == 0 for i in range(len(frames))]
    segments: list[Segment] = []
    begin = 0
    for i in range(1, len(frames)):
        if may_cut[i] and frames[i] - frames[begin] >= step:
            segments.append(Segment(len(segments), frames[begin:i]))
            begin = i
    segments.append(Segment(len(segments), frames[begin:]))
    return segments

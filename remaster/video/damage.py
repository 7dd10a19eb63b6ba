"""Damage: frames missing from the middle of a video, found before any work.

A file with garbage written into it still opens, and the demuxer skips to the next readable
cluster: the packet scan itself then lacks the frames, so comparing decoded frames with the scan
finds nothing. What gives the loss away is a hole in the video's timestamps where the data also
went missing: bytes no packet accounts for, an audio stream with a gap at the same time, or an
index entry with no packet (probe.MediaInfo.lost). A long frame with no such evidence is a
variable frame rate (a held drawing, a still), never a hole.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from remaster.core.wording import counted
from remaster.video.probe import MAX_REORDER_FRAMES, MediaInfo

# A step in the timestamps longer than this many typical frame durations (the median of its
# neighbours) is a missing frame, if the data went missing there too. Regular CFR steps differ
# by one tick of rounding; 1.5 is halfway between one frame duration and two.
HOLE_RATIO = 1.5
NEIGHBOURS = 8  # steps on each side whose median is the local frame duration


@dataclass(frozen=True)
class Hole:
    after: float  # seconds from the first frame (as players and --start count): the last frame before the hole
    before: float  # the first frame after it
    missing: int  # frames that the local frame rate puts in it

    def describe(self) -> str:
        return f"{counted(self.missing, 'frame')} missing between {self.after:.3f} s and {self.before:.3f} s"


def find_holes(media: MediaInfo) -> list[Hole]:
    """The stretches of the video where frames were lost, each with the frames missing from it."""
    video = media.video
    pts, tb = video.pts, video.time_base
    steps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    # (first frame index, last frame index, missing) of each step that lost frames
    found: list[list[int]] = []
    for i, step in enumerate(steps):
        around = steps[max(0, i - NEIGHBOURS) : i] + steps[i + 1 : i + 1 + NEIGHBOURS]
        if not around:
            continue
        typical = statistics.median(around)
        if typical <= 0 or step <= HOLE_RATIO * typical:
            continue
        # Frames lost in decode order show up in presentation order up to the reorder depth away.
        reach = MAX_REORDER_FRAMES * typical
        start, end = float((pts[i] - reach) * tb), float((pts[i + 1] + reach) * tb)
        if not any(a <= end and b >= start for a, b in media.lost):
            continue
        missing = max(1, round(step / typical) - 1)
        if found and i - found[-1][1] <= MAX_REORDER_FRAMES:
            found[-1][1], found[-1][2] = i + 1, found[-1][2] + missing
        else:
            found.append([i, i + 1, missing])
    return [Hole(video.seconds(pts[a] - pts[0]), video.seconds(pts[b] - pts[0]), n) for a, b, n in found]

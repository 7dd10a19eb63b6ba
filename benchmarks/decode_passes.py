"""Decode only: consecutive segments in one pass (decode_segments) against one decode per segment.

    python benchmarks/decode_passes.py SOURCE [--segment-seconds 10] [--rounds 3]

The per-segment way is what runs did before one pass: each segment decoded from the keyframe
at or before its first frame (decode_segment, one segment at a time). Reports the process's CPU
time (user + system, the decoder's threads included) of each round and the ratio of medians.
docs/video.md made its source with:

    ffmpeg -f lavfi -i testsrc2=size=720x480:rate=24000/1001 -t 60 -c:v libx264 -preset fast \\
        -crf 18 -tune animation -x264-params keyint=infinite:scenecut=0 -pix_fmt yuv420p src.mkv
"""

from __future__ import annotations

import argparse
import resource
import statistics
from collections.abc import Callable
from pathlib import Path

from remaster.video.decode import DecodeStats, decode_segment, decode_segments
from remaster.video.probe import probe
from remaster.video.segments import plan_segments


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    source = args.source
    video = probe(source).video
    segments = plan_segments(video, args.segment_seconds, video.pts)
    print(f"{video.frame_count} frames, {len(video.keyframe_pts)} keyframe(s), {len(segments)} segments")

    def one_pass() -> int:
        return sum(sum(1 for _ in frames) for _, _, frames in decode_segments(source, video, segments))

    def per_segment() -> int:
        return sum(sum(1 for _ in decode_segment(source, video, s, DecodeStats())) for s in segments)

    medians = {}
    ways: dict[str, Callable[[], int]] = {"one pass": one_pass, "per segment": per_segment}
    for name, decode in ways.items():
        rounds = []
        for _ in range(args.rounds):
            start = cpu_seconds()
            assert decode() == video.frame_count, name  # every frame, once
            rounds.append(cpu_seconds() - start)
        medians[name] = statistics.median(rounds)
        print(f"{name}: CPU seconds {', '.join(f'{t:.2f}' for t in rounds)}; median {medians[name]:.2f}")
    print(f"per segment / one pass: {medians['per segment'] / medians['one pass']:.2f}")


if __name__ == "__main__":
    main()

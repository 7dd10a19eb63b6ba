"""Concatenate segment files at packet level, exactly: every frame once, in order, with its pts.

FFmpeg's concat demuxer shifted frames by the B-frame delay (83 ms) or by 1 ms per boundary
(DESIGN.md section 6); copying packets with PyAV keeps them exact. Matroska stores no DTS, so
they are rebuilt: with P the sorted pts of all frames and d the reorder depth, the k-th packet in
decode order gets dts = P[k - d], which is never after its own pts and always increasing.
"""

from __future__ import annotations

from pathlib import Path

import av


def _packets(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size:
                yield packet


def reorder_depth(decode_order: list[int]) -> int:
    """The smallest d for which decode_order[k] >= sorted(decode_order)[k - d] for every k."""
    # dts_k = P[k - d] <= pts_k  <=>  k - d <= rank(pts_k), so d is the largest k - rank(pts_k).
    rank = {p: i for i, p in enumerate(sorted(decode_order))}
    return max([0] + [k - rank[p] for k, p in enumerate(decode_order)])


def concatenate(segment_files: list[Path], output: Path) -> int:
    """Write one MKV with the video of all segments; returns the number of frames."""
    # Pass 1: timestamps only, to know the reorder depth before writing anything.
    decode_order: list[int] = []
    depth = 0
    for path in segment_files:
        pts = [packet.pts for packet in _packets(path)]
        depth = max(depth, reorder_depth(pts))
        decode_order.extend(pts)
    presentation = sorted(decode_order)
    step = presentation[1] - presentation[0] if len(presentation) > 1 else 1

    with av.open(str(segment_files[0])) as first, av.open(str(output), "w", format="matroska") as out:
        template = first.streams.video[0]
        # opaque: copy the codec parameters as they are, without looking up a codec by the
        # decoder's name (libdav1d for AV1 has no encoder of that name).
        stream = out.add_stream_from_template(template, opaque=True)
        time_base = template.time_base
        k = 0
        for path in segment_files:
            for packet in _packets(path):
                # Before the first frame, count back in whole frame steps.
                packet.dts = presentation[k - depth] if k >= depth else presentation[0] - (depth - k) * step
                packet.stream = stream
                packet.time_base = time_base
                out.mux(packet)
                k += 1
    return k

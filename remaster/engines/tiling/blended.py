"""Tiles for networks that cannot be tiled exactly: overlapping windows, cross-faded.

For a network whose receptive field remaster does not know (a community architecture run through
spandrel: attention windows, channel attention over the whole input, or just an unknown depth),
cropping tiles gives seams wherever a tile's edge changed the output. Here every tile runs on a
window with `margin` pixels of real context on every side, and along each boundary between two
tiles their outputs are cross-faded with a raised-cosine ramp over `fade` pixels each side of it:
the two weights add up to exactly 1 at every pixel, so a flat area stays flat, and the window's
outer `margin - fade` pixels, the most disturbed by its artificial edge, are never used.
The result is close to untiled, not equal to it (docs/guide.md gives the measured numbers);
one tile (`--tile 0`, or a frame that fits) is exactly the untiled run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from remaster.engines.tiling.tiles import Span, Tile


def _ramp(t: Tensor) -> Tensor:
    """0 -> 1 over t in [0, 1], raised cosine: ramp(t) + ramp(1 - t) = 1, flat at both ends."""
    return 0.5 - 0.5 * torch.cos(math.pi * t.clamp(0, 1))


def axis_weights(span: Span, window_start: int, window_length: int, scale: int, fade: int) -> Tensor:
    """The weight of each output pixel of a window along one axis.

    Pixels are placed by their centres in input coordinates, so that a tile and its neighbour
    compute their ramps at the same points. `fade` 0: a hard cut at the boundary (plain tiles).
    """
    centres = (torch.arange(scale * window_length, dtype=torch.float64) + 0.5) / scale + window_start
    start, end = span.start, span.start + span.length
    weights = torch.ones_like(centres)
    if start > 0:  # a tile before this one: fade in across the shared boundary
        weights *= _ramp((centres - (start - fade)) / (2 * fade)) if fade else (centres >= start).double()
    if not span.last:  # a tile after it: fade out
        weights *= 1 - _ramp((centres - (end - fade)) / (2 * fade)) if fade else (centres < end).double()
    return weights.float()


def run_blended_tiled(
    body: nn.Module, x: Tensor, tiles: list[Tile], margin: int, fade: int, scale: int, align: int = 1
) -> Tensor:
    """The body's output for a N x C x H x W frame, tile by tile, with cross-faded overlaps.

    `body` takes any window size (its own size requirements are its business: spandrel pads and
    crops) and returns `scale` x it in float32. Windows start at multiples of `align` (more
    context, never less). `fade` is capped by `margin` and by half the shortest tile, so that a
    tile's two ramps along an axis never overlap and the weights of neighbours always add up to 1.
    """
    height, width = x.shape[-2:]
    shortest = min(min(t.rows.length, t.cols.length) for t in tiles)
    fade = min(fade, margin, shortest // 2)
    s = scale
    out: Tensor | None = None
    for tile in tiles:
        r, c = tile.rows, tile.cols
        top, left = max(0, r.start - margin) // align * align, max(0, c.start - margin) // align * align
        bottom, right = min(height, r.start + r.length + margin), min(width, c.start + c.length + margin)
        result = body(x[..., top:bottom, left:right])
        if out is None:
            out = result.new_zeros(x.shape[0], result.shape[1], s * height, s * width)
        if len(tiles) == 1:
            out.copy_(result)  # untiled: the network's own output, untouched
            break
        rows = axis_weights(r, top, bottom - top, s, fade).to(result.device)
        cols = axis_weights(c, left, right - left, s, fade).to(result.device)
        out[..., s * top : s * bottom, s * left : s * right] += result * (rows[:, None] * cols[None, :])
    assert out is not None
    return out

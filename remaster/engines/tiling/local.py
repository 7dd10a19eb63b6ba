"""Exact tiles for purely local networks: cut with the receptive field's margin, crop the overlap.

A network whose every layer is local (convolutions, pixel shuffles, a resize) computes an output
pixel from the input within its receptive field. A tile cut from the padded frame with that
margin of real context on every side therefore yields exactly the untiled pixels in its middle;
the margin's own output, which saw the tile's artificial edge, is cropped. Where the window
reaches the padded frame's edge, it sees the same edge as the untiled run. Tiled equals untiled
up to float rounding (the convolutions' summation order may depend on the map's size).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from remaster.architectures.descriptor import Border, ReceptiveField
from remaster.engines.tiling.tiles import Tile, plan_tiles


def pad_frame(x: Tensor, border: Border) -> Tensor:
    """Pad a N x C x H x W frame as the model's reference runner does (`ModelDescriptor.border`)."""
    extra_h, extra_w = -x.shape[-2] % border.align, -x.shape[-1] % border.align
    b = border.size
    return F.pad(x, (b, b + extra_w, b, b + extra_h), mode=border.mode)


def run_local_tiled(
    body: Callable[[Tensor], Tensor],
    padded: Tensor,
    tiles: list[Tile],
    border: int,
    margin: int,
    scale: int,
    consumed: int = 0,
) -> Tensor:
    """The output for the padded frame's core (the frame without `border`), tile by tile.

    `body` is the network: a torch module, or the ncnn engine's graph (`NcnnNet.run`).
    `tiles` are planned over the core; each runs on its window of `padded` widened by `margin`
    (less at the padded frame's edges) and contributes scale x its own rows and columns. A body
    with unpadded convolutions (`consumed` > 0, `ReceptiveField.consumed`) gives its window less
    `consumed` on every side; it needs the whole margin, so `border` must be at least `margin`.
    """
    if consumed and border < margin:
        raise ValueError(f"a body that consumes its margin needs border >= margin ({border} < {margin})")
    n = padded.shape[0]
    height, width = padded.shape[-2:]
    core_h, core_w = height - 2 * border, width - 2 * border
    out: Tensor | None = None
    for tile in tiles:
        r, c, s = tile.rows, tile.cols, scale
        top, left = max(0, border + r.start - margin), max(0, border + c.start - margin)
        bottom = min(height, border + r.start + r.length + margin)
        right = min(width, border + c.start + c.length + margin)
        result = body(padded[..., top:bottom, left:right])
        if out is None:
            out = result.new_empty(n, result.shape[1], s * core_h, s * core_w)
        y, x = s * (border + r.start - top - consumed), s * (border + c.start - left - consumed)
        out[..., s * r.start : s * (r.start + r.length), s * c.start : s * (c.start + c.length)] = result[
            ..., y : y + s * r.length, x : x + s * c.length
        ]
    assert out is not None
    return out


def upscale_local(
    body: Callable[[Tensor], Tensor], x: Tensor, border: Border, tiling: ReceptiveField, scale: int, tile: int
) -> tuple[Tensor, int]:
    """Frames `x` through a purely local network in tiles of side `tile` (0: the whole frame), each
    widened by the receptive field: the scale x output (float) and the number of tiles it ran in."""
    padded = pad_frame(x, border).contiguous(memory_format=torch.channels_last)
    h, w = x.shape[-2:]
    core_h, core_w = padded.shape[-2] - 2 * border.size, padded.shape[-1] - 2 * border.size
    tiles = plan_tiles(core_h, core_w, tile, tiling.multiple)
    out = run_local_tiled(body, padded, tiles, border.size, tiling.margin, scale, tiling.consumed)
    return out[..., : scale * h, : scale * w].float(), len(tiles)

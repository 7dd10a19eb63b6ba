"""Exact tiling: the untiled result, SE means included, in memory bounded by the tile.

Real-CUGAN's convolutions are unpadded, so a tile cut from the padded frame with the model's
full margin of real context around it yields exactly the untiled pixels, except for the SE
blocks, which gate a map by its mean over the *whole frame*. Per-tile means give seams
(30-44 dB against untiled); the official code's average of per-tile means still 41-63 dB.

Here the body runs in stages split at the SE blocks (`UpCunet.stages`). Every tile runs a
stage, and at the SE point adds up the part of the map that it *owns*: tiles start at
multiples of 4, so each tile's map is an exact window of the frame's map, and the owned parts
partition it. The sums make the frame's mean, the gate follows, and the next stage resumes
each tile from its kept state. Cost: the kept state between stages (moved to host memory on
a GPU, to a temporary file past a memory budget: `remaster.engines.tiling.states`) and one recomputed
layer (unet2.conv1) in the last stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from torch import Tensor

from remaster.architectures.realcugan.network import State, UpCunet
from remaster.engines.tiling.states import TileStates

StageFn = Callable[[State, Tensor | None], State]


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in the coordinates of the padded frame's core (no margin)."""

    start: int
    length: int
    last: bool

    def owned(self, resolution: Fraction, local_size: int) -> int:
        """How many rows of a map at `resolution` this tile owns, from its local row 0.

        A tile owns its own rows of the map; the last tile also owns the margin at the far
        edge, which is the rest of its local map (the first tile's local map starts at the
        frame map's row 0, so it owns the near margin by construction).
        """
        if self.last:
            return local_size
        rows = self.length * resolution
        assert rows.denominator == 1 and rows <= local_size, "tile not aligned for exact SE sums"
        return int(rows)


def split_axis(size: int, tile: int, multiple: int) -> list[Span]:
    """Cut `size` into near-equal spans of at most `tile` that start at multiples of `multiple`.

    `tile` 0 means one span. Equal spans rather than full tiles and a sliver: the sliver
    would cost a whole margin for a few rows.
    """
    if tile <= 0 or tile >= size:
        return [Span(0, size, True)]
    count = math.ceil(size / tile)
    step = math.ceil(size / count / multiple) * multiple
    starts = list(range(0, size, step))
    return [Span(s, min(step, size - s), s == starts[-1]) for s in starts]


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    def window(self, padded: Tensor, margin: int) -> Tensor:
        r, c = self.rows, self.cols
        return padded[..., r.start : r.start + r.length + 2 * margin, c.start : c.start + c.length + 2 * margin]


def plan_tiles(height: int, width: int, tile: int, multiple: int) -> list[Tile]:
    return [Tile(r, c) for r in split_axis(height, tile, multiple) for c in split_axis(width, tile, multiple)]


def _segments(model: UpCunet, stages: list[StageFn]) -> Iterator[list[StageFn]]:
    """Groups of stages that a tile runs without stopping: split at each SE block, if any."""
    if model.has_se:
        yield from ([stage] for stage in stages)
    else:
        yield stages


def run_body_tiled(
    model: UpCunet,
    padded: Tensor,
    tiles: list[Tile],
    stages: list[StageFn] | None = None,
    store: TileStates | None = None,
) -> Tensor:
    """The body's output for a padded batch (N x 3 x Hp x Wp), computed tile by tile.

    `stages` defaults to the model's (pass compiled ones to use them); `store` is where tile
    states wait between stages (host memory for a GPU run, a file past a budget; default: in
    memory where they are). The caller closes it.
    """
    g = model.geometry
    stages = stages or model.stages
    blocks = model.se_blocks
    n = padded.shape[0]
    core_h, core_w = padded.shape[-2] - 2 * g.pad, padded.shape[-1] - 2 * g.pad
    out: Tensor | None = None
    store = store if store is not None else TileStates(padded.device)
    # With one tile the state never leaves the device, so nothing is worth recomputing.
    drop = UpCunet.RECOMPUTABLE if len(tiles) > 1 else ()
    gate: Tensor | None = None
    for index, segment in enumerate(_segments(model, stages)):
        at_se_point = model.has_se and index < len(blocks)
        sums: Tensor | None = None
        count = 0
        for t, tile in enumerate(tiles):
            state = {"x": tile.window(padded, g.pad)} if index == 0 else store.take(t, padded.device)
            for stage in segment:
                state = stage(state, gate)
            if at_se_point:
                se_map = state[UpCunet.SE_INPUT]
                res = g.se_resolution[index]
                rows = tile.rows.owned(res, se_map.shape[-2])
                cols = tile.cols.owned(res, se_map.shape[-1])
                part = se_map[..., :rows, :cols].float().sum(dim=(2, 3))
                sums = part if sums is None else sums + part
                count += rows * cols
                store.put(t, {k: v for k, v in state.items() if k not in drop})
                del state, se_map  # the tile's memory is free before the next tile runs
            else:
                result = state["out"]
                if out is None:
                    out = result.new_empty(n, result.shape[1], g.scale * core_h, g.scale * core_w)
                r, c, s = tile.rows, tile.cols, g.scale
                assert result.shape[-2:] == (s * r.length, s * c.length)
                out[..., s * r.start : s * (r.start + r.length), s * c.start : s * (c.start + c.length)] = result
        if at_se_point:
            gate = blocks[index].gate(sums / count)
    assert out is not None
    return out

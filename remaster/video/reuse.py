"""Held frames: anime is drawn on twos and threes, so most frames repeat the previous drawing.

A frame that shows the same drawing as the last frame the model ran on reuses that frame's
upscaled result instead of running the model again. `exact` reuses only identical decoded
frames; `auto` (the default) also absorbs the codec noise that makes held frames differ
slightly once encoded, but never real motion. The thresholds, and why they are safe, are in
docs/video.md ("Held frames").
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from remaster.core.modes import parse_mode
from remaster.video.decode import Planes

# auto: 8x8 blocks, differences in 8-bit levels (10-bit and deeper sources are scaled down).
BLOCK = 8
# Measured on an anime card animated on twos and threes, encoded with x264 at CRF 18/23/28:
# between held frames (codec noise only) the worst 8x8 block differs by 2.5/2.2/4.2 levels on
# average; between the frames of a one-pixel-per-frame pan, by at least 31.
# The mean absolute difference of the worst 8x8 block: any outline that moves by one pixel
# puts several pixels of a high-contrast edge into one block.
MAX_BLOCK_DIFFERENCE = 8.0
# The whole picture's mean squared difference: 1.0 is a PSNR of 48 dB between the two source
# frames. The model passes noise on a little amplified (measured: about 3 dB less between the
# upscaled frames), so a reused frame stays within 45 dB of what the model would have made of
# it. A fade or a light change, which moves every block a little, is caught here too; and as
# the reference is the last frame the model ran on, not the previous one, slow changes cannot
# add up past it.
MAX_SQUARED_DIFFERENCE = 1.0


class ReuseMode(StrEnum):
    AUTO = "auto"  # the same drawing within the noise bound above
    EXACT = "exact"  # identical decoded planes only
    OFF = "off"  # the model runs on every frame


parse_reuse = parse_mode(ReuseMode, "--reuse")


def _planes_differ(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32)).astype(np.float32) * scale
    if float(np.mean(diff * diff)) > MAX_SQUARED_DIFFERENCE:
        return True
    h, w = diff.shape
    bh, bw = -(-h // BLOCK), -(-w // BLOCK)
    padded = np.zeros((bh * BLOCK, bw * BLOCK), np.float32)
    padded[:h, :w] = diff
    counts = np.zeros_like(padded)
    counts[:h, :w] = 1
    # Partial edge blocks are averaged over their real pixels only.
    sums = padded.reshape(bh, BLOCK, bw, BLOCK).sum(axis=(1, 3))
    sizes = counts.reshape(bh, BLOCK, bw, BLOCK).sum(axis=(1, 3))
    return float((sums / sizes).max()) > MAX_BLOCK_DIFFERENCE


def same_drawing(a: Planes, b: Planes, mode: ReuseMode) -> bool:
    """Whether frame `b` may reuse the upscaled result of frame `a`."""
    if mode == ReuseMode.OFF or a.y.shape != b.y.shape or a.bits != b.bits:
        return False
    planes = ((a.y, b.y), (a.u, b.u), (a.v, b.v))
    if mode == ReuseMode.EXACT:
        return all(np.array_equal(p, q) for p, q in planes)
    scale = 1.0 / (1 << (a.bits - 8))
    return not any(_planes_differ(p, q, scale) for p, q in planes)

"""Pixel formats and pixel shapes, for every module that reads, writes or resizes pictures.

A layout is ((log2 chroma subsampling x, y), bits per sample): yuv420p10le -> ((1, 1), 10).
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from remaster.core.errors import UsageError

Layout = tuple[tuple[int, int], int]
_SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}
# Planar little-endian Y'CbCr; yuvj is FFmpeg's older name for the same in full range (JPEG).
_PLANAR_YUV = re.compile(r"yuv(j?)(420|422|444)p(?:(\d+)le)?")
# The semi-planar formats NVENC wants (chroma interleaved, 4:2:0), by bits per sample.
SEMI_PLANAR = {"nv12": 8, "p010le": 10}


def planar_layout(pix_fmt: str) -> Layout | None:
    """The layout of planar Y'CbCr (yuvj too: decoders still give it); None for anything else."""
    match = _PLANAR_YUV.fullmatch(pix_fmt)
    if match is None:
        return None
    return _SUBSAMPLING[match[2]], int(match[3] or 8)


def pix_fmt_layout(pix_fmt: str) -> Layout:
    """The layout of a pixel format the writer can fill: planar Y'CbCr, or NVENC's semi-planar ones."""
    if pix_fmt in SEMI_PLANAR:
        return (1, 1), SEMI_PLANAR[pix_fmt]
    layout = planar_layout(pix_fmt)
    if layout is None or pix_fmt.startswith("yuvj"):  # encoders are given the range as a tag, not a format
        raise UsageError(f"--pix-fmt {pix_fmt}: want planar Y'CbCr such as yuv420p or yuv420p10le (or nv12, p010le)")
    return layout


def sample_dtype(bits: int) -> np.dtype:
    """How a plane's samples are stored: a byte for 8 bits, a little-endian 16-bit word for 9 to 16
    (the le formats above, which are the only deeper ones read or written)."""
    return np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")


def square_pixel_size(width: Fraction, height: Fraction, sar: Fraction) -> tuple[Fraction, Fraction]:
    """The size of a `width` x `height` picture of `sar`-shaped pixels resampled to square ones, with
    the same display aspect: the longer side of the pixel shrinks rather than the other stretching,
    so no detail is invented. The caller rounds it as its encoder needs."""
    if sar < 1:
        return width * sar, height
    return width, height / sar

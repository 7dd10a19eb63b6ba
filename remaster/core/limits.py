"""The largest picture or video frame remaster takes, checked from the file's header before decoding.

A flat 20000x20000 PNG is a few hundred KB on disk and 1.2 GB as 8-bit RGB before the model has
even started; the engine's float copies and the states kept between tiles then multiply that
(about 880 bytes a source pixel at --tile 256, measured: see DEFAULT_MAX_PIXELS). So the area is
refused up front, with the way to raise the limit for a machine that has the memory.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from remaster.core.errors import UsageError

# 4096 x 2304 = 9.4 MP, the 16:9 frame 4096 wide: 4K UHD (3840x2160) and DCI 4K (4096x2160) fit, a
# 300 dpi A4 scan (2480x3508, 8.7 MP) too, and anime sources (at most 1920x1080, 2.1 MP) 4.5 times
# over. Memory decides the rest: `remaster image` at --tile 256, 2x, CPU fp32 peaked at 1.26 GiB for
# 1 MP and 3.84 GiB for 4.2 MP with the tile states kept in memory (0.4 GiB + 883 bytes a pixel, about
# 8.2 GiB at this limit); past the state budget they go to a temporary file (engines/tiling/states.py), which
# brought 4.2 MP to 0.88 GiB, so what is left per pixel is the frames themselves (about 60 bytes).
DEFAULT_MAX_PIXELS = 4096 * 2304
MAX_PIXELS_ENV = "REMASTER_MAX_PIXELS"
MAX_PIXELS_HELP = (
    f"refuse pictures larger than this: pixels, or WxH; 0 = no limit (default: ${MAX_PIXELS_ENV}, else 4096x2304)"
)


def parse_max_pixels(value: str) -> int:
    """A number of pixels (`16777216`), an area as WIDTHxHEIGHT (`4096x4096`), or 0 for no limit."""
    text = value.strip().lower()
    try:
        if "x" in text:
            width, height = (int(side) for side in text.split("x"))
            pixels = width * height
        else:
            pixels = int(text)
    except ValueError:
        wanted = "pixels (16777216), WIDTHxHEIGHT (4096x4096) or 0"
        raise argparse.ArgumentTypeError(f"want {wanted}, got {value!r}") from None
    if pixels < 0:
        raise argparse.ArgumentTypeError(f"want 0 (no limit) or more pixels, got {value!r}")
    return pixels


def max_pixels(option: int | None = None) -> int:
    """The limit in force: --max-pixels if given, else $REMASTER_MAX_PIXELS, else the default; 0 = none."""
    if option is not None:
        return option
    value = os.environ.get(MAX_PIXELS_ENV)
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        return parse_max_pixels(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"${MAX_PIXELS_ENV}: {exc}") from None


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.0f}" if mp >= 100 else f"{mp:.3g}"


def check_pixels(path: Path, width: int, height: int, limit: int | None = None) -> None:
    """Refuse a picture or video larger in area than the limit (`limit` None: max_pixels())."""
    limit = max_pixels(limit)
    if limit and width * height > limit:
        raise UsageError(
            f"{path}: {width}x{height} is {_megapixels(width * height)} MP, more than the limit of "
            f"{_megapixels(limit)} MP (--max-pixels to raise it)"
        )

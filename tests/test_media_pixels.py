"""Pixel formats and square pixels (remaster/media/pixels.py), with the values written out."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from remaster.core.errors import UsageError
from remaster.media.pixels import pix_fmt_layout, planar_layout, sample_dtype, square_pixel_size


def test_planar_layouts_as_decoders_give_them():
    assert planar_layout("yuv420p") == ((1, 1), 8)
    assert planar_layout("yuv422p10le") == ((1, 0), 10)
    assert planar_layout("yuv444p16le") == ((0, 0), 16)
    assert planar_layout("yuvj420p") == ((1, 1), 8)  # MJPEG's full-range name
    assert planar_layout("nv12") is None and planar_layout("rgb24") is None and planar_layout("yuv420p10be") is None


def test_the_writer_takes_planar_and_nvenc_formats_only():
    assert pix_fmt_layout("yuv420p10le") == ((1, 1), 10)
    assert pix_fmt_layout("nv12") == ((1, 1), 8)
    assert pix_fmt_layout("p010le") == ((1, 1), 10)
    for refused in ("yuvj420p", "rgb24", "gray"):
        with pytest.raises(UsageError, match=f"--pix-fmt {refused}: want planar"):
            pix_fmt_layout(refused)


def test_samples_are_bytes_at_8_bits_and_little_endian_words_above():
    assert sample_dtype(8) == np.dtype("uint8")
    for bits in (10, 12, 16):
        assert sample_dtype(bits) == np.dtype("<u2")


def test_square_pixels_shrink_the_longer_side_of_the_pixel():
    # NTSC DVD 4:3 (SAR 8:9, pixels taller than wide) and 16:9 (SAR 32:27, wider than tall).
    assert square_pixel_size(Fraction(720), Fraction(480), Fraction(8, 9)) == (640, 480)
    assert square_pixel_size(Fraction(720), Fraction(480), Fraction(32, 27)) == (720, 405)
    assert square_pixel_size(Fraction(1440), Fraction(960), Fraction(10, 11)) == (Fraction(14400, 11), 960)

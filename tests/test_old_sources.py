"""Old sources: anamorphic DVD video, odd sizes, 10-bit, legacy containers, fields, held frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from remaster.cli import main
from remaster.samples import EpisodeSpec, make_episode

pytestmark = pytest.mark.slow


def _display_aspect(path: Path) -> float:
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        sar = stream.sample_aspect_ratio or Fraction(1)
        return stream.codec_context.width * sar / stream.codec_context.height


@pytest.mark.parametrize("square", [False, True])
def test_anamorphic_dvd_keeps_its_display_aspect(tmp_path, square):
    spec = EpisodeSpec(width=720, height=480, seconds=0.6, sar=(8, 9), colour="smpte170m", audio=())
    source = make_episode(tmp_path / "dvd.mkv", spec)
    out = tmp_path / "dvd.out.mkv"
    # One frame is enough to check the geometry.
    options = ["--end", "0.03", "--quiet", "--fields", "progressive"] + (["--square-pixels"] if square else [])
    assert main([str(source), "-o", str(out), *options]) == 0
    assert _display_aspect(out) == pytest.approx(4 / 3, rel=0.005)
    with av.open(str(out)) as f:
        stream = f.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        assert size == ((1280, 960) if square else (1440, 960))
        assert (stream.sample_aspect_ratio or Fraction(1)) == (1 if square else Fraction(8, 9))

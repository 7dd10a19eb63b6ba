"""Messages count in words: "1 frame", "2 frames", never "1 frames" (remaster.core.wording.counted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from remaster.cli import main
from remaster.core.errors import DamagedInput
from remaster.demo.samples import find_font
from remaster.video.damage import Hole
from remaster.video.decode import DecodeStats
from remaster.video.probe import probe
from remaster.video.segments import Segment
from remaster.video.stages import _check_decoded


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory) -> Path:
    """A one-frame MKV with one attachment (a font), as a still or a title card can be."""
    path = tmp_path_factory.mktemp("one") / "card.mkv"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    command += ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=24", "-frames:v", "1", "-c:v", "libx264"]
    command += ["-attach", str(find_font()), "-metadata:s:t:0", "mimetype=font/ttf", str(path)]
    subprocess.run(command, check=True)
    return path


def test_a_hole_of_one_frame():
    assert Hole(1.0, 1.083, 1).describe() == "1 frame missing between 1.000 s and 1.083 s"
    assert Hole(1.0, 1.125, 2).describe() == "2 frames missing between 1.000 s and 1.125 s"


def test_a_damaged_segment_of_one_frame(one_frame):
    media = probe(one_frame)
    segment = Segment(0, (media.video.pts[0],))
    with pytest.raises(DamagedInput, match="decoded 0 of its 1 frame") as raised:
        _check_decoded(media, segment, DecodeStats(frames=0, errors=1), allow_damaged=False)
    assert "decoded 0 of its 1 frame (1 packet rejected by the decoder;" in str(raised.value)


def test_export_of_one_frame_with_one_attachment(one_frame, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path / "home"))  # the built-in targets, not this machine's
    output = tmp_path / "card.mp4"
    assert main(["export", str(one_frame), "--target", "upload-1080p-h264", "-o", str(output)]) == 0
    err = capsys.readouterr().err
    assert f"-> {output}: 64x48, 1 frame, " in err, err
    assert f"note: dropped 1 attachment ({find_font().name}): MP4 cannot carry attachments" in err, err

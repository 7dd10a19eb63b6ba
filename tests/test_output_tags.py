"""What the output says about its video track: a title that describes it, no statistics of the old
encode, its field order; and output sizes an encoder cannot take, refused before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.video.encode import (
    ENCODER_SIZE_LIMITS,
    EncoderSettings,
    OutputColour,
    SegmentWriter,
    VideoFormat,
    _open_encoder,
    size_problem,
)
from remaster.video.mux import _video_tags, is_stale_video_tag
from remaster.video.probe import probe

SPEC = EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25, cover_image=False)
# What mkvmerge writes for every track, with a language: FFmpeg reads them as NAME-eng. The values
# are those of a 10-minute H.264 encode, which the new track is not.
MKVMERGE_STATISTICS = {
    "BPS-eng": "1843200",
    "DURATION-eng": "00:10:00.000000000",
    "NUMBER_OF_FRAMES-eng": "14386",
    "NUMBER_OF_BYTES-eng": "138240000",
    "_STATISTICS_WRITING_APP-eng": "mkvmerge v81.0 ('Milliontown') 64-bit",
    "_STATISTICS_WRITING_DATE_UTC-eng": "2024-01-01 00:00:00",
    "_STATISTICS_TAGS-eng": "BPS DURATION NUMBER_OF_FRAMES NUMBER_OF_BYTES",
}
AV_FIELD_PROGRESSIVE = 1  # libavcodec/defs.h


def _ffmpeg(*args: str) -> subprocess.CompletedProcess:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    return subprocess.run(command, capture_output=True, text=True)


def _remux_with_tags(source: Path, target: Path, tags: dict[str, str]) -> Path:
    metadata = [arg for key, value in tags.items() for arg in ("-metadata:s:v:0", f"{key}={value}")]
    result = _ffmpeg("-loglevel", "error", "-i", str(source), "-map", "0", "-c", "copy", *metadata, str(target))
    assert result.returncode == 0, result.stderr
    return target


def _tracks(path: Path) -> list[dict]:
    with av.open(str(path)) as container:
        return [
            {"type": s.type, "disposition": int(s.disposition), "metadata": dict(s.metadata)} for s in container.streams
        ]


@pytest.fixture(scope="module")
def mkvmerged(tmp_path_factory) -> Path:
    """An episode whose video track has a title ("H.264 48p 8-bit 23.976 fps") and mkvmerge's statistics."""
    folder = tmp_path_factory.mktemp("src")
    return _remux_with_tags(make_episode(folder / "plain.mkv", SPEC), folder / "episode.mkv", MKVMERGE_STATISTICS)


@pytest.mark.slow
def test_new_video_track_is_described_truthfully_and_the_rest_is_kept(mkvmerged, tmp_path):
    output = tmp_path / "out.mkv"
    assert main([str(mkvmerged), "-o", str(output), "--segment-seconds", "0.5", "--quiet"]) == 0
    source_tracks, output_tracks = _tracks(mkvmerged), _tracks(output)
    assert source_tracks[0]["metadata"]["title"].startswith("H.264 48p")
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height, bits = ctx.width, ctx.height, ctx.format.components[0].bits
        field_order = ctx.field_order
    assert (width, height) == (2 * SPEC.width, 2 * SPEC.height)
    video = output_tracks[0]["metadata"]
    assert video.pop("title") == f"HEVC {width}x{height} {bits}-bit, remaster 2x-conservative"
    assert video.pop("language") == "jpn"
    # The only statistics left is the DURATION the muxer writes for the new track: 1 s, not 10 min.
    assert list(video) == ["DURATION"] and video["DURATION"].startswith("00:00:01.0")
    assert output_tracks[0]["disposition"] == source_tracks[0]["disposition"]
    # Every other track: tags (titles, languages) and dispositions as they were.
    assert output_tracks[1:] == source_tracks[1:]
    # Field order: what ffprobe and players read, and what `ffmpeg -i` prints.
    assert field_order == AV_FIELD_PROGRESSIVE
    shown = _ffmpeg("-i", str(output)).stderr
    video_line = next(line for line in shown.splitlines() if "Video:" in line)
    assert "progressive" in video_line, video_line


def test_a_track_without_a_title_gets_none(mkvmerged, tmp_path):
    untitled = _remux_with_tags(mkvmerged, tmp_path / "untitled.mkv", {"title": ""})
    tags, disposition = _video_tags(probe(untitled), "HEVC 128x96 10-bit, remaster 2x-conservative")
    assert tags == {"language": "jpn"}
    assert disposition == "default"


def test_statistics_tags_with_or_without_a_language_are_stale():
    assert all(is_stale_video_tag(key) for key in MKVMERGE_STATISTICS)
    assert is_stale_video_tag("BPS") and is_stale_video_tag("encoder") and is_stale_video_tag("ENCODER-jpn")
    assert not any(is_stale_video_tag(key) for key in ("title", "language", "comment", "title-eng"))


@pytest.mark.parametrize("codec", ["x265", "x264", "svtav1"])
def test_segments_say_they_are_progressive(codec, tmp_path):
    # x264 tagged its streams progressive by itself; x265 and SVT-AV1 left the field order unknown.
    path = tmp_path / f"{codec}.mkv"
    settings = EncoderSettings(codec=codec, crf=30, speed="ultrafast" if codec.startswith("x26") else "12")
    video = VideoFormat(64, 64, Fraction(1), Fraction(1, 1000), Fraction(25))
    writer = SegmentWriter(path, settings, video, OutputColour("bt709", 1, 1, 1))
    pix_fmt = settings.resolved().pix_fmt
    depth = np.uint8 if pix_fmt == "yuv420p" else np.uint16
    for i in range(2):
        y = np.full((64, 64), 64 + i, depth)
        writer.write(y, np.full((32, 32), 128, depth), np.full((32, 32), 128, depth), i * 40)
    writer.close()
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.field_order == AV_FIELD_PROGRESSIVE


# Sizes on both sides of each limit, all cheap to open (the other side small): the table in
# encode.py must agree with the encoders this PyAV wheel ships. x265's area limit is only checked
# above it (opening at 16384x8704 allocates gigabytes); x265 names that number in its own error.
BOUNDARIES = {
    "libx265": (
        "yuv420p10le",
        [(16, 16), (14, 64), (64, 14), (16384, 8706), (8706, 16384), (4216, 16), (4218, 16), (16, 4216), (16, 4218),
         (4216, 30), (4218, 30), (8192, 16), (16384, 32)],
    ),  # fmt: skip
    "libx264": ("yuv420p", [(2, 2), (16384, 64), (16386, 64), (64, 16384), (64, 16386)]),
    "libsvtav1": ("yuv420p10le", [(2, 2), (2, 64), (64, 2), (16384, 64), (16386, 64), (64, 8704), (64, 8706)]),
    # FFmpeg's own check, for every encoder; rawvideo allocates nothing when it opens.
    "rawvideo": ("yuv420p", [(16384, 16128), (16384, 16130)]),
}


@pytest.mark.parametrize("encoder", list(BOUNDARIES))
def test_size_limits_agree_with_the_bundled_encoders(encoder, monkeypatch):
    monkeypatch.setenv("SVT_LOG", "1")  # SVT-AV1's configuration dump, errors only
    assert encoder in ENCODER_SIZE_LIMITS or encoder == "rawvideo"
    pix_fmt, sizes = BOUNDARIES[encoder]
    for width, height in sizes:
        try:
            _open_encoder(encoder, pix_fmt, width, height)
            opens = True
        except av.FFmpegError:
            opens = False
        assert opens == (size_problem(encoder, width, height) is None), (encoder, width, height)


SVT_STRIP = """
import sys, av, numpy as np
w, h = int(sys.argv[1]), int(sys.argv[2])
with av.open(sys.argv[3], "w") as out:
    s = out.add_stream("libsvtav1", rate=24)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p10le"
    for i in range(3):
        frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), format="rgb24")
        for packet in s.encode(frame.reformat(format="yuv420p10le")):
            out.mux(packet)
    for packet in s.encode(None):
        out.mux(packet)
print("encoded")
"""


@pytest.mark.slow
def test_svt_av1_encodes_the_strips_an_older_release_hung_on(tmp_path):
    """PyAV 18.1.0's SVT-AV1 opened strips under 26 on one side and over 64 on the other and then
    never returned a packet; the table lets them through because 18.1.1's encodes them. Should a
    release hang again, this fails, and the table needs the limit back."""

    def encodes(width: int, height: int) -> bool:
        command = [sys.executable, "-c", SVT_STRIP, str(width), str(height), str(tmp_path / "strip.mkv")]
        env = {**os.environ, "SVT_LOG": "1"}
        try:  # 3 frames of this size take 0.02 s when they encode at all
            return subprocess.run(command, capture_output=True, env=env, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    for width, height in [(64, 24), (66, 24), (65, 24), (1024, 8), (16, 128), (128, 26)]:
        assert size_problem("libsvtav1", width, height) is None
        assert encodes(width, height), (width, height)


def _tiny_video(path: Path, width: int, height: int, frames: int = 3) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("size", "codec", "message"),
    [
        # 6x4 scaled 2x: x265 opens nothing under 16 on a side ("Invalid argument" after the model ran).
        (
            (6, 4),
            "x265",
            "the output would be 12x8; x265 takes at least 16 on a side (choose a preset or --model "
            "with a larger scale, or --codec x264 or svtav1)",
        ),
        # 64x4400 scaled 2x: higher than SVT-AV1 takes (8704); x265 and x264 would.
        (
            (64, 4400),
            "svtav1",
            "the output would be 128x8800; svtav1 takes at most 16384 wide and 8704 high (choose a "
            "preset or --model with a smaller scale, or --codec x265 or x264)",
        ),
        # 8200x64 scaled 2x: wider than x264 (and SVT-AV1) take; x265 would.
        (
            (8200, 64),
            "x264",
            "the output would be 16400x128; x264 takes at most 16384 on a side (choose a preset or "
            "--model with a smaller scale, or --codec x265)",
        ),
        # 4096x8 scaled 2x: x265 opens nothing this wide under 32 high ("cannot open the libx265
        # encoder: Invalid data" after the model had run on the first segment).
        (
            (4096, 8),
            "x265",
            "the output would be 8192x16; x265 takes at most 4216 on one side when the other is under 32 "
            "(choose a preset or --model with a larger scale, or --codec x264 or svtav1)",
        ),
    ],
)
def test_output_size_an_encoder_cannot_take_is_refused_before_work(size, codec, message, tmp_path, capsys):
    # A model that takes pictures of any size (waifu2x's CUnet, padded by replication): the
    # encoder's limits are what is refused here, not the model's.
    source = _tiny_video(tmp_path / "tiny.mkv", *size)
    output = tmp_path / "out.mkv"
    code = main([str(source), "-o", str(output), "--codec", codec, "--preset", "2x-waifu2x-cunet-denoise0x", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == [f"remaster: error: {source}: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mkv"]  # no output, no work folder


def test_a_picture_smaller_than_the_model_takes_is_refused_in_the_plan(tmp_path, capsys):
    # Real-CUGAN 2x pads by 18 and aligns to 2: at least 20 px a side. Found at the first frame, this
    # raced the encoder's refusal of the 8192x16 output (one run said one, the next the other).
    source = _tiny_video(tmp_path / "tiny.mkv", 4096, 8)
    output = tmp_path / "out.mkv"
    assert main([str(source), "-o", str(output), "--codec", "x265", "--preset", "2x-conservative", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"remaster: error: {source}: 4096x8 is too small for 2x-conservative (at least 20 px a side)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mkv"]  # no output, no work folder

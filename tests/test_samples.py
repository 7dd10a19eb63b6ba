"""The synthetic episodes have every stream, flag and timing quirk they promise, as PyAV reads them back."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from remaster.demo.samples import (
    AudioTrack,
    EpisodeSpec,
    SampleError,
    chapter_marks,
    find_font,
    frame_times,
    make_episode,
)

D = av.stream.Disposition
# FFmpeg's colour enum values: (matrix, primaries, transfer).
BT709 = (1, 1, 1)
BT470BG_SD = (5, 5, 6)

SPECS = {
    "default.mkv": EpisodeSpec(),
    "plain.mp4": EpisodeSpec(container="mp4"),
    "vfr.mkv": EpisodeSpec(vfr=True),
    "hevc10.mkv": EpisodeSpec(video_codec="libx265", pix_fmt="yuv420p10le"),
    # SD-style extras in the same file: a cover image, a 8:9 sample aspect ratio, BT.601 colour.
    "cover.mkv": EpisodeSpec(width=240, height=160, cover_image=True, sar=(8, 9), colour="bt470bg"),
}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("episodes")
    return {name: make_episode(folder / name, spec) for name, spec in SPECS.items()}


def scan(path: Path, stream_index: int) -> list[av.Packet]:
    """Every packet of one stream, in file (decode) order, without the empty flush packet."""
    with av.open(str(path)) as container:
        return [p for p in container.demux(container.streams[stream_index]) if p.size]


def ms(t: Fraction) -> int:
    # Matroska stores ms; FFmpeg rescales rounding halves up (0.5005 s -> 501 ms).
    return math.floor(t * 1000 + Fraction(1, 2))


def seconds(packet: av.Packet) -> float:
    return float(packet.pts * packet.time_base)


def title(stream) -> str | None:
    # Matroska names it "title"; ffmpeg's MP4 demuxer reads a track's udta name as "name".
    return stream.metadata.get("title") or stream.metadata.get("name")


def check_video_structure(path: Path, spec: EpisodeSpec) -> list[av.Packet]:
    packets = scan(path, 0)
    pts = [p.pts for p in packets]
    assert len(packets) == spec.frame_count
    # B-frames: display order differs from decode order.
    assert any(b < a for a, b in zip(pts, pts[1:], strict=False))
    keyframes = [seconds(p) for p in packets if p.is_keyframe]
    expected_keys = int(spec.seconds / spec.gop_seconds)  # 3 in 3 s with a 1 s GOP
    assert len(keyframes) == expected_keys and keyframes[0] == 0
    assert len(set(pts)) == len(pts) and min(pts) == 0
    return packets


def test_default_mkv_has_every_stream_with_languages_titles_and_dispositions(episodes):
    path = episodes["default.mkv"]
    with av.open(str(path)) as c:
        assert c.format.name.startswith("matroska")
        kinds = [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams]
        assert kinds[:3] == [("video", "h264"), ("audio", "aac"), ("audio", "opus")]
        assert kinds[3][0] == kinds[4][0] == "subtitle"
        assert kinds[3][1] in ("ass", "ssa") and kinds[4][1] in ("subrip", "srt")
        assert kinds[5] == ("attachment", None) and len(kinds) == 6
        languages = [s.language for s in c.streams if s.type != "attachment"]
        assert languages == ["jpn", "jpn", "eng", "eng", "eng"]
        titles = [title(s) for s in c.streams if s.type != "attachment"]
        assert titles[1:] == ["Japanese", "Commentary", "English (Styled)", "English (SDH)"]
        assert titles[0].startswith("H.264 144p")
        flags = [s.disposition for s in c.streams]
        assert flags[0] == D.default
        assert flags[1] == D.default
        assert flags[2] == D.comment  # and not default
        assert flags[3] == D.default
        assert flags[4] == D.hearing_impaired
        tags = {k.lower(): v for k, v in c.metadata.items()}
        assert tags["title"] == "Remaster Sample - 01" and "comment" in tags


def test_default_mkv_video(episodes):
    spec = SPECS["default.mkv"]
    path = episodes["default.mkv"]
    packets = check_video_structure(path, spec)
    assert spec.frame_count == round(spec.seconds * spec.rate) == 72
    assert sorted(p.pts for p in packets) == [ms(t) for t in frame_times(spec)]  # Matroska: ms
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.width, ctx.height, ctx.pix_fmt) == (256, 144, "yuv420p")
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range) == (*BT709, 1)
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == 72
    # Motion: every frame differs from the one before.
    assert all(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(frames, frames[1:], strict=False))


def test_default_mkv_audio_offsets(episodes):
    path = episodes["default.mkv"]
    video_start = seconds(scan(path, 0)[0])
    assert video_start == 0
    # Encoder priming moves the first packet a little before the track's start (AAC: -21 ms).
    assert abs(seconds(min(scan(path, 1), key=lambda p: p.pts)) - video_start) < 0.025
    commentary = scan(path, 2)
    assert abs(seconds(commentary[0]) - video_start - 0.5) < 0.025
    # Each track lasts until the end of the episode.
    for index in (1, 2):
        last = scan(path, index)[-1]
        assert abs(seconds(last) + float(last.duration * last.time_base) - 3.0) < 0.05


def test_default_mkv_subtitles_font_and_chapters(episodes):
    path = episodes["default.mkv"]
    with av.open(str(path)) as c:
        header = c.streams.subtitles[0].codec_context.extradata.decode()
        (font,) = c.streams.attachments
        assert font.mimetype == "font/ttf" and font.metadata["filename"] == find_font().name
        assert font.data == find_font().read_bytes()
        chapters = [(ch["metadata"]["title"], float(ch["start"] * ch["time_base"])) for ch in c.chapters()]
    assert "Style: Default,DejaVu Sans," in header and "PlayResY: 144" in header
    dialogue = [bytes(p).decode() for p in sorted(scan(path, 3), key=lambda p: p.pts)]
    default_lines = [line for line in dialogue if ",Default," in line]
    assert len(default_lines) == 4 and any(",Sign," in line for line in dialogue)
    starts = [seconds(p) for p in scan(path, 3)]
    assert min(starts) < 0.5 and max(starts) > 2.0  # spread over the episode
    cues = scan(path, 4)
    assert len(cues) == 4 and bytes(cues[0]).decode() == "[wind blowing]"
    assert chapters == [(name, start) for name, start, _ in chapter_marks(SPECS["default.mkv"])]
    assert [name for name, _ in chapters] == ["Opening", "Part A", "Part B"]


def test_mp4(episodes):
    spec = SPECS["plain.mp4"]
    path = episodes["plain.mp4"]
    with av.open(str(path)) as c:
        assert "mp4" in c.format.name
        kinds = [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams]
        # ffmpeg writes the chapters both as a Nero chpl box and as a QuickTime chapter text track,
        # which its demuxer lists as a data stream.
        assert kinds == [
            ("video", "h264"),
            ("audio", "aac"),
            ("audio", "opus"),
            ("subtitle", "mov_text"),
            ("data", None),
        ]
        assert not c.streams.attachments
        assert [s.language for s in c.streams][:4] == ["jpn", "jpn", "eng", "eng"]
        assert [title(s) for s in c.streams][1:4] == ["Japanese", "Commentary", "English (SDH)"]
        flags = [s.disposition for s in c.streams]
        assert flags[1] == D.default and flags[2] == D.comment
        # The only subtitle track: default; MP4's 'kind' box turns hearing_impaired into captions too.
        assert flags[3] & D.default and flags[3] & D.hearing_impaired
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["Opening", "Part A", "Part B"]
        assert c.metadata["title"] == "Remaster Sample - 01"
    packets = check_video_structure(path, spec)
    assert any(p.pts != p.dts for p in packets)  # MP4 stores decode timestamps
    assert abs(seconds(scan(path, 2)[0]) - 0.5) < 0.025


def test_vfr_timestamps_are_irregular(episodes):
    spec = SPECS["vfr.mkv"]
    path = episodes["vfr.mkv"]
    packets = check_video_structure(path, spec)
    pts = sorted(p.pts for p in packets)
    assert pts == [ms(t) for t in frame_times(spec)]
    steps = {b - a for a, b in zip(pts, pts[1:], strict=False)}
    # 1/24, 1/12 and 1/30 s frames (each rounded either way to ms).
    assert {41, 42} & steps and {83, 84} & steps and {33, 34} & steps
    assert spec.frame_count != round(spec.seconds * spec.rate)


def test_hevc_10bit(episodes):
    spec = SPECS["hevc10.mkv"]
    path = episodes["hevc10.mkv"]
    check_video_structure(path, spec)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "hevc"
        assert (stream.codec_context.colorspace, stream.codec_context.color_primaries) == BT709[:2]
        frame = next(c.decode(video=0))
        assert frame.format.name == "yuv420p10le"
        # Really 10-bit content, not 8-bit values shifted up.
        assert np.any(frame.to_ndarray()[: frame.height] % 4 != 0)


def test_cover_image_sar_and_sd_colour(episodes):
    path = episodes["cover.mkv"]
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.sample_aspect_ratio == Fraction(8, 9)
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_trc) == BT470BG_SD
        # Matroska image attachments come back from ffmpeg's demuxer as attached_pic video streams.
        (cover,) = [s for s in c.streams.video if s.disposition & D.attached_pic]
        assert cover.codec_context.name == "mjpeg"
        assert cover.metadata["filename"] == "cover.jpg" and cover.metadata["mimetype"] == "image/jpeg"
        assert len(c.streams.video) == 2 and len(c.streams.attachments) == 1  # the cover, and the font


def test_find_font():
    font = find_font()
    assert font.is_file() and font.suffix.lower() == ".ttf"


def test_find_font_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("REMASTER_FONT", str(tmp_path / "missing.ttf"))
    with pytest.raises(SampleError, match="REMASTER_FONT"):
        find_font()


def test_spec_normalises_and_validates():
    spec = EpisodeSpec(tags={"title": "x"}, rate=25, audio=[AudioTrack()])
    assert spec.tags == (("title", "x"),) and spec.rate == Fraction(25) and isinstance(spec.audio, tuple)
    hash(spec)
    with pytest.raises(ValueError, match="even"):
        EpisodeSpec(width=255)
    with pytest.raises(ValueError, match="container"):
        EpisodeSpec(container="flv")
    with pytest.raises(ValueError, match="start_offset"):
        EpisodeSpec(seconds=1, audio=(AudioTrack(start_offset=2),))


def test_ffmpeg_failure_is_reported_and_leaves_no_file(tmp_path):
    spec = EpisodeSpec(seconds=0.5, audio=(AudioTrack(codec="no_such_encoder"),), ass_subtitles=False)
    target = tmp_path / "broken.mkv"
    with pytest.raises(SampleError, match="no_such_encoder"):
        make_episode(target, spec)
    assert list(tmp_path.iterdir()) == []


def test_same_spec_makes_the_same_bytes(tmp_path):
    spec = EpisodeSpec(seconds=1.0, cover_image=True)
    first = make_episode(tmp_path / "a.mkv", spec).read_bytes()
    assert make_episode(tmp_path / "b.mkv", spec).read_bytes() == first

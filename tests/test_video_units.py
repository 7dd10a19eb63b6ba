"""The pipeline's planning logic, without media: segments, DTS rebuilding, stream plans, colour tags."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from remaster.commands.options import parse_time
from remaster.core.errors import UsageError
from remaster.core.presets import _read
from remaster.video.checkpoint import WorkDir
from remaster.video.concat import reorder_depth
from remaster.video.encode import EncoderSettings, check_encoder, fill_frame, pix_fmt_layout
from remaster.video.mux import plan_mux
from remaster.video.plan import output_colour
from remaster.video.probe import MediaInfo, StreamInfo, VideoInfo, fingerprint
from remaster.video.segments import Segment, frames_in_range, plan_segments


def _video(pts, keyframes, height=480, matrix="bt601", tagged=None) -> VideoInfo:
    return VideoInfo(
        index=0, codec="h264", width=720, height=height, sar=Fraction(1), pix_fmt="yuv420p", bits=8,
        matrix=matrix, full_range=False,
        tagged=tagged or {"colorspace": 0, "color_primaries": 0, "color_trc": 0, "color_range": 0},
        time_base=Fraction(1, 1000), rate=Fraction(24), pts=tuple(pts), keyframe_pts=tuple(keyframes), has_pts=True,
        declared_frames=0, declared_end=None,
    )  # fmt: skip


def test_segments_are_cut_every_segment_seconds_and_cover_every_frame_once():
    pts = list(range(0, 10_000, 40))  # 10 s at 25 fps
    video = _video(pts, keyframes=pts[::12])  # a keyframe every 0.48 s: not where the cuts fall
    segments = plan_segments(video, 2.0, video.pts)
    assert [p for s in segments for p in s.pts] == pts
    assert [s.first_pts for s in segments] == [0, 2000, 4000, 6000, 8000]
    assert all(s.frame_count == 50 for s in segments)


def test_a_time_range_may_start_between_keyframes():
    pts = list(range(0, 4000, 40))
    video = _video(pts, keyframes=[0, 2000])
    frames = frames_in_range(video, 0.5, 1.0)
    assert frames == tuple(range(520, 1000, 40))
    assert plan_segments(video, 30, frames) == [Segment(0, frames)]
    with pytest.raises(UsageError, match="no video frames"):
        frames_in_range(video, 5.0, 6.0)


@pytest.mark.parametrize(
    ("decode_order", "depth"),
    [
        ([0, 40, 80, 120], 0),  # no B-frames
        ([0, 120, 40, 80, 240, 160, 200], 1),  # I P B B P B B
        ([0, 160, 80, 40, 120], 2),  # b-pyramid: I P B(ref) b b
    ],
)
def test_reorder_depth_makes_dts_never_later_than_pts(decode_order, depth):
    assert reorder_depth(decode_order) == depth
    ordered = sorted(decode_order)

    def dts_ok(d: int) -> bool:
        return all(ordered[k - d] <= pts for k, pts in enumerate(decode_order) if k >= d)

    assert dts_ok(depth) and (depth == 0 or not dts_ok(depth - 1))  # enough, and no more than needed


def test_parse_time():
    assert parse_time("90.5") == 90.5
    assert parse_time("1:30.5") == 90.5
    assert parse_time("0:01:30") == 90


def _media(streams: list[StreamInfo]) -> MediaInfo:
    video = _video([0], [0])
    return MediaInfo(Path("in.mkv"), 1, "matroska,webm", 0.0, 1.0, video, tuple(streams))


STREAMS = [
    StreamInfo(0, "video", "h264", "jpn", None, False),
    StreamInfo(1, "audio", "flac", "jpn", None, False),
    StreamInfo(2, "audio", "vorbis", "eng", None, False),
    StreamInfo(3, "subtitle", "ass", "eng", "Signs", False),
    StreamInfo(4, "subtitle", "hdmv_pgs_subtitle", "eng", None, False),
    StreamInfo(5, "attachment", "font/ttf", None, "font.ttf", False),
    StreamInfo(6, "video", "mjpeg", None, None, True),
]


def test_mkv_output_keeps_everything_and_reattaches_the_cover():
    plan = plan_mux(_media(STREAMS), "matroska")
    assert plan.maps == ["1", "2", "3", "4", "5"]
    assert plan.options == {} and plan.notes == []
    assert [c.index for c in plan.covers] == [6]


def test_mp4_output_names_what_it_drops_or_converts():
    plan = plan_mux(_media(STREAMS), "mp4")
    assert plan.maps == ["1", "2", "3", "6"]
    assert plan.options == {"c:a:1": "aac", "b:a:1": "256k", "c:s:0": "mov_text", "disposition:v:1": "attached_pic"}
    notes = "\n".join(plan.notes)
    assert "converted #2 audio vorbis [eng] to aac 256k" in notes
    assert 'converted #3 subtitle ass [eng] "Signs" to mov_text (styling lost)' in notes
    assert "dropped #4 subtitle hdmv_pgs_subtitle" in notes
    # Attachments in one line, as export says it: an anime release may carry dozens of fonts.
    assert "dropped 1 attachment (font.ttf): MP4 cannot carry attachments" in notes


def test_hd_output_is_bt709_and_sd_keeps_its_matrix():
    sd = _video([0], [0], height=480)
    assert output_colour(sd, 960).matrix == "bt709"
    assert (output_colour(sd, 960).colorspace, output_colour(sd, 960).color_primaries) == (1, 1)
    kept = output_colour(sd, 480)
    assert (kept.matrix, kept.colorspace, kept.color_primaries) == ("bt601", 6, 6)  # untagged NTSC: SMPTE 170M
    pal = output_colour(_video([0], [0], height=576), 576)
    assert (pal.colorspace, pal.color_primaries) == (5, 5)


def _finish(work: WorkDir, segment: Segment) -> None:
    partial = work.partial_path(segment)
    partial.write_bytes(b"segment data")
    work.commit(segment, partial, segment.frame_count, segment.first_pts, segment.last_pts)
    work.close()


def test_checkpoints_are_dropped_when_the_input_or_settings_change(tmp_path):
    source, root = tmp_path / "episode.mkv", tmp_path / "work"
    source.write_bytes(b"first cut " * 1000)
    segment = Segment(0, (0, 40, 80))
    _finish(WorkDir(root, fingerprint(source), {"crf": 16}).open(), segment)
    again = WorkDir(root, fingerprint(source), {"crf": 16}).open()
    assert again.finished(segment) is not None and again.invalidated is None
    again.close()
    # Another file at the same path, of the same size (a re-release, a re-rip): the segments go.
    source.write_bytes(b"final cut " * 1000)
    other = WorkDir(root, fingerprint(source), {"crf": 16}).open()
    assert other.invalidated == "the input file changed" and other.finished(segment) is None
    assert not list(root.glob("segment-*"))
    other.close()
    _finish(WorkDir(root, fingerprint(source), {"crf": 16}).open(), segment)
    changed = WorkDir(root, fingerprint(source), {"crf": 18}).open()
    assert changed.invalidated == "settings changed (crf)" and changed.finished(segment) is None
    changed.close()
    assert not list(root.glob("segment-*"))


def test_one_run_per_work_directory(tmp_path):
    first = WorkDir(tmp_path, "x", {}).open()
    with pytest.raises(UsageError, match="another remaster run"):
        WorkDir(tmp_path, "x", {}).open()
    first.close()


def test_preset_encoder_table_is_checked(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[model]\nname = "2x-conservative"\n[encoder]\ncrf = "high"\n')
    with pytest.raises(UsageError, match="crf = 'high': want a number"):
        _read(path)
    path.write_text('[model]\nname = "2x-conservative"\n[encoder]\nbitrate = 5\n')
    with pytest.raises(UsageError, match="unknown \\[encoder\\] keys bitrate"):
        _read(path)
    path.write_text('[model]\nname = "2x-conservative"\n[encoder]\ncrf = 20\n')
    preset = _read(path)
    assert preset.encoder.crf == 20 and preset.encoder.codec == "x265"


@pytest.mark.parametrize("pix_fmt", ["p010le", "nv12", "yuv420p10le", "yuv422p"])
def test_writer_fills_planar_and_nvenc_layouts(pix_fmt):
    """NVENC's semi-planar formats are filled by the same code the CPU tests run. The check reads
    the frame's buffers as the formats define them (libavutil/pixfmt.h: NV12 and P010 put Cb and Cr
    interleaved in one plane, P010 in the high 10 bits of 16), not through swscale, whose
    semi-planar unpacking once lost the last chroma row of this 10x6 picture in a full run."""
    shift, bits = pix_fmt_layout(pix_fmt)
    rng = np.random.default_rng(0)
    h, w = 6, 10
    ch, cw = h >> shift[1], w >> shift[0]
    y = rng.integers(0, 2**bits, (h, w))
    u, v = (rng.integers(0, 2**bits, (ch, cw)) for _ in range(2))
    frame = av.VideoFrame(w, h, pix_fmt)
    fill_frame(frame, y, u, v)
    dtype = np.dtype(np.uint8 if bits == 8 else "<u2")

    def rows(plane, height: int, width: int) -> np.ndarray:
        samples = np.frombuffer(plane, dtype=dtype)[: height * plane.line_size // dtype.itemsize]
        return samples.reshape(height, -1)[:, :width]

    if pix_fmt in ("nv12", "p010le"):
        uv = rows(frame.planes[1], ch, 2 * cw)
        got = [rows(frame.planes[0], h, w), uv[:, 0::2], uv[:, 1::2]]
        if pix_fmt == "p010le":
            assert all(not (plane & 0x3F).any() for plane in got)  # the low 6 bits are zero
            got = [plane >> 6 for plane in got]
    else:
        got = [rows(frame.planes[0], h, w), rows(frame.planes[1], ch, cw), rows(frame.planes[2], ch, cw)]
    for plane, want in zip(got, (y, u, v), strict=True):
        assert np.array_equal(plane, want)


@pytest.mark.skipif(torch.cuda.is_available(), reason="NVENC may open on a machine with a GPU")
def test_nvenc_without_a_gpu_is_refused_before_any_work():
    with pytest.raises(UsageError, match="hevc_nvenc does not open here"):
        check_encoder(EncoderSettings(codec="nvenc-hevc"))
    with pytest.raises(UsageError, match="--codec 'vp8'"):
        check_encoder(EncoderSettings(codec="vp8"))

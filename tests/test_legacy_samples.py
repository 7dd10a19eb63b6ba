"""The old-source samples (issue 4) are what they claim, as PyAV and FFmpeg's own filters read them back.

DVD VOBs, broadcast TS, XviD AVIs, odd-sized WebM, 10-bit H.264, anamorphic SD, true interlace,
hard telecine, animation on twos and threes, a 1-pixel pan, a narrow 10-bit gradient, and frame
markers that survive upscaling and lossy coding.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from remaster.demo.samples import (
    AudioTrack,
    EpisodeSpec,
    MarkerError,
    _pictures,
    _rgb_frames,
    field_sources,
    frame_times,
    make_episode,
    marker_height,
    new_drawings,
    read_marker,
)

SD = dict(width=720, height=480)
SMALL = dict(width=320, height=240)
SPECS = {
    "dvd.vob": EpisodeSpec(container="vob", **SD, seconds=0.5, sar=(8, 9), colour="smpte170m", marker=True),
    # 29.97 fps, as Japanese broadcasts are: 3003 ticks of the 90 kHz clock a frame.
    "broadcast.ts": EpisodeSpec(container="ts", **SMALL, rate=Fraction(30000, 1001), seconds=0.5, marker=True),
    "xvid.avi": EpisodeSpec(container="avi", **SMALL, seconds=0.5, marker=True),
    "h264.avi": EpisodeSpec(container="avi", video_codec="libx264", **SMALL, seconds=0.5, marker=True, audio=()),
    "odd.webm": EpisodeSpec(container="webm", width=853, height=479, seconds=0.5, marker=True),
    "hi10p.mkv": EpisodeSpec(pix_fmt="yuv420p10le", seconds=0.5, marker=True, audio=(), ass_subtitles=False),
    "interlaced.vob": EpisodeSpec(container="vob", **SD, seconds=0.5, scan="interlaced", marker=True, audio=()),
    "interlaced.ts": EpisodeSpec(
        container="ts", video_codec="libx264", **SMALL, seconds=0.5, scan="interlaced", marker=True, audio=()
    ),
    "telecined.vob": EpisodeSpec(container="vob", **SD, seconds=1.0, scan="telecined", marker=True, audio=()),
    "progressive.vob": EpisodeSpec(container="vob", **SMALL, seconds=0.5, audio=()),
    "holds.mkv": EpisodeSpec(seconds=1.0, hold_pattern=(2, 3), marker=True, audio=(), ass_subtitles=False),
    "slow_pan.mkv": EpisodeSpec(seconds=0.5, motion="slow_pan", audio=(), ass_subtitles=False),
    "gradient10.mkv": EpisodeSpec(
        seconds=0.25, content="gradient", video_codec="libx265", pix_fmt="yuv420p10le", audio=(), ass_subtitles=False
    ),
    "gradient8.mkv": EpisodeSpec(
        seconds=0.25, content="gradient", video_codec="libx265", pix_fmt="yuv420p", audio=(), ass_subtitles=False
    ),
}


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Callable[[str], Path]:
    """Makes the named sample the first time a test asks for it (each takes 0.1-0.3 s)."""
    folder = tmp_path_factory.mktemp("legacy")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = make_episode(folder / name, SPECS[name])
        return made[name]

    return get


def video_packets(path: Path, **options: str) -> list[av.Packet]:
    with av.open(str(path), options=options) as container:
        return [p for p in container.demux(container.streams.video[0]) if p.size]


def decoded(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format=fmt) for f in container.decode(video=0)]


def markers(frames: Iterable[np.ndarray], spec: EpisodeSpec, field: str | None = None) -> list[int]:
    return [read_marker(f, spec.width, spec.height, field) for f in frames]


def run_filters(path: Path, chain: list[tuple[str, str | None]]) -> list[av.VideoFrame]:
    """Decode `path` through a filter chain. The buffer source gets the frame rate, which decimate needs
    (PyAV's add_buffer(template=stream) leaves it unset and decimate then refuses to configure)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        graph = av.filter.Graph()
        nodes = [
            graph.add(
                "buffer",
                f"video_size={ctx.width}x{ctx.height}:pix_fmt={ctx.pix_fmt}:time_base={stream.time_base}"
                f":frame_rate={stream.average_rate}:pixel_aspect=1/1",
            )
        ]
        nodes += [graph.add(name, args) for name, args in chain] + [graph.add("buffersink")]
        for a, b in zip(nodes, nodes[1:], strict=False):
            a.link_to(b)
        graph.configure()
        out: list[av.VideoFrame] = []

        def drain() -> None:
            while True:
                try:
                    out.append(graph.pull())
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        for frame in container.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
        return out


def idet(path: Path) -> tuple[list[dict[str, str]], dict[str, float]]:
    """Per-frame idet metadata, and the final counts (lavfi.idet.<single|multiple|repeated>.<kind>)."""
    frames = run_filters(path, [("idet", None)])
    per_frame = [dict(f.metadata) for f in frames]
    totals = {k: float(v) for k, v in per_frame[-1].items() if not k.endswith("current_frame")}
    return per_frame, totals


def comb(gray: np.ndarray) -> float:
    """Mean distance of each line from the average of its neighbours: high where fields disagree."""
    y = gray.astype(np.float32)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


# ---------------------------------------------------------------------------------------------
# Containers and codecs


def test_dvd_vob(episode):
    spec = SPECS["dvd.vob"]
    path = episode("dvd.vob")
    with av.open(str(path)) as c:
        assert c.format.name == "mpeg"
        video = c.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("mpeg2video", "yuv420p")
        assert [a.codec_context.name for a in c.streams.audio] == ["ac3", "mp2"]
        assert not c.streams.subtitles and not c.streams.attachments and not c.chapters()
        assert 0.4 < c.start_time / 1e6 < 0.7  # MPEG-PS starts its clock late, like real VOBs
        assert video.sample_aspect_ratio == video.codec_context.sample_aspect_ratio == Fraction(8, 9)
    packets = video_packets(path)
    assert len(packets) == spec.frame_count == 12
    assert any(p.pts != p.dts for p in packets)  # B-frames
    assert markers(decoded(path), spec) == list(range(spec.frame_count))


def test_broadcast_ts_starts_late(episode):
    spec = SPECS["broadcast.ts"]
    path = episode("broadcast.ts")
    with av.open(str(path)) as c:
        assert c.format.name == "mpegts"
        video = c.streams.video[0]
        assert video.codec_context.name == "mpeg2video"
        assert [a.codec_context.name for a in c.streams.audio] == ["aac", "mp2"]
        assert c.start_time / 1e6 > 1.0
    packets = video_packets(path)
    assert len(packets) == spec.frame_count
    assert packets[0].dts == round(spec.start_time * 90000) == 126000  # the timeline starts at start_time
    pts = sorted(p.pts for p in packets)
    assert {b - a for a, b in zip(pts, pts[1:], strict=False)} == {3003}  # 90 kHz / 29.97, exactly
    assert markers(decoded(path), spec) == list(range(spec.frame_count))


def test_xvid_avi_stores_no_pts(episode):
    spec = SPECS["xvid.avi"]
    path = episode("xvid.avi")
    with av.open(str(path)) as c:
        assert c.format.name == "avi"
        video = c.streams.video[0]
        assert (video.codec_context.name, video.codec_tag) == ("mpeg4", "XVID")
        assert video.time_base == 1 / spec.rate
        assert [a.codec_context.name for a in c.streams.audio] == ["mp3float", "ac3"]
    # What the file holds: a frame index (dts) per packet, no pts.
    stored = video_packets(path, fflags="nofillin")
    assert [p.pts for p in stored] == [None] * spec.frame_count
    assert [p.dts for p in stored] == list(range(spec.frame_count))
    # What FFmpeg's demuxer makes of it by default: pts inferred from the one-frame B-frame delay, so
    # packets show decode order (pts != dts) and the first frame is shown at 1/rate, not 0.
    packets = video_packets(path)
    assert [p.pts for p in packets] != sorted(p.pts for p in packets)
    assert sorted(p.pts for p in packets) == list(range(1, spec.frame_count + 1))
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert [f.pts for f in frames] == list(range(1, spec.frame_count + 1))
    assert frames[0].time == pytest.approx(float(1 / spec.rate))
    assert markers((f.to_ndarray(format="rgb24") for f in frames), spec) == list(range(spec.frame_count))


def test_h264_avi_gives_frames_wrong_pts(episode):
    # The trap of H.264 in AVI: FFmpeg infers pts = dts + 1 (it cannot infer display order for H.264),
    # so decoded frames come out in display order carrying non-monotonic pts. Only frame order is right.
    spec = SPECS["h264.avi"]
    path = episode("h264.avi")
    assert all(p.pts is None for p in video_packets(path, fflags="nofillin"))
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_tag == "H264"
        frames = list(c.decode(video=0))
    pts = [f.pts for f in frames]
    assert pts != sorted(pts) and sorted(pts) == list(range(1, spec.frame_count + 1))
    assert markers((f.to_ndarray(format="rgb24") for f in frames), spec) == list(range(spec.frame_count))


def test_webm_odd_size(episode):
    spec = SPECS["odd.webm"]
    path = episode("odd.webm")
    with av.open(str(path)) as c:
        assert c.format.name == "matroska,webm"
        video = c.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("vp9", 853, 479)
        assert [a.codec_context.name for a in c.streams.audio] == ["opus"]
        assert [s.codec_context.name for s in c.streams.subtitles] == ["webvtt"]
        assert not c.streams.attachments
    assert len(video_packets(path)) == spec.frame_count
    frames = decoded(path)
    assert frames[0].shape == (479, 853, 3)
    assert markers(frames, spec) == list(range(spec.frame_count))


def test_hi10p_h264(episode):
    path = episode("hi10p.mkv")
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.pix_fmt, ctx.profile) == ("h264", "yuv420p10le", "High 10")
        frame = next(c.decode(video=0))
        assert frame.format.name == "yuv420p10le"
        assert np.any(frame.to_ndarray()[: frame.height] % 4 != 0)  # really 10-bit
    assert len(video_packets(path)) == SPECS["hi10p.mkv"].frame_count


@pytest.mark.parametrize(
    "container, codec, sar",
    [
        ("vob", "mpeg2video", (8, 9)),
        ("vob", "mpeg2video", (32, 27)),
        ("ts", "mpeg2video", (32, 27)),
        ("avi", "mpeg4", (8, 9)),
        ("mkv", "libx264", (32, 27)),
        ("mp4", "libx264", (8, 9)),
        ("webm", "libvpx-vp9", (8, 9)),
    ],
)
def test_anamorphic(tmp_path, container, codec, sar):
    spec = EpisodeSpec(container=container, video_codec=codec, **SD, seconds=0.2, sar=sar, audio=(), colour="smpte170m")
    path = make_episode(tmp_path / f"sar.{container}", spec)
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        assert video.sample_aspect_ratio == Fraction(*sar)  # the container's field (or the bitstream's)
        if codec != "libvpx-vp9":  # VP9 has no aspect ratio in its bitstream: WebM's display size only
            assert video.codec_context.sample_aspect_ratio == Fraction(*sar)
        shape = video.sample_aspect_ratio * Fraction(video.width, video.height)
        assert shape == (Fraction(4, 3) if sar == (8, 9) else Fraction(16, 9))


def test_webm_rounds_a_16_9_display_size(tmp_path):
    # Matroska stores the display size in whole pixels: 720 * 32/27 = 853.3 becomes 853, so an NTSC
    # 16:9 WebM reads back as 853/720, not 32/27 (real files have the same rounding).
    spec = EpisodeSpec(container="webm", **SD, seconds=0.2, sar=(32, 27), audio=())
    with av.open(str(make_episode(tmp_path / "wide.webm", spec))) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(853, 720)


# ---------------------------------------------------------------------------------------------
# Fields


@pytest.mark.parametrize("name", ["interlaced.vob", "interlaced.ts"])
def test_interlaced_is_detected_tff(episode, name):
    spec = SPECS[name]
    path = episode(name)
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        assert video.codec_context.field_order == 2  # AV_FIELD_TT
        frames = list(c.decode(video))
    assert len(frames) == spec.frame_count == 15 and spec.rate == Fraction(30000, 1001)
    assert all(f.interlaced_frame for f in frames)
    per_frame, totals = idet(path)
    assert [m["lavfi.idet.single.current_frame"] for m in per_frame] == ["tff"] * spec.frame_count
    assert totals["lavfi.idet.multiple.tff"] == spec.frame_count and totals["lavfi.idet.multiple.progressive"] == 0
    assert totals["lavfi.idet.repeated.neither"] == spec.frame_count  # no field is ever repeated
    # Both fields of a frame carry its index; the fields themselves are 1/59.94 s apart (combed).
    rgb = [f.to_ndarray(format="rgb24") for f in frames]
    for field in (None, "top", "bottom"):
        assert markers(rgb, spec, field) == list(range(spec.frame_count))
    assert field_sources(spec)[:2] == [(0, 1), (2, 3)]


def test_interlaced_frames_are_combed_everywhere(episode):
    # Every frame of true interlace mixes two moments; compare with the whole (AA) frames of the
    # telecined sample, same size and picture.
    interlaced = [comb(f) for f in decoded(episode("interlaced.vob"), "gray")]
    whole = [comb(f) for f in decoded(episode("telecined.vob"), "gray")[::5]]
    # Every frame is there (15 interlaced; 30 telecined, every 5th whole), or min and max say little.
    assert (len(interlaced), len(whole)) == (15, 6)
    assert min(interlaced) > 2 * max(whole)


def test_progressive_is_detected_progressive(episode):
    per_frame, totals = idet(episode("progressive.vob"))
    assert len(per_frame) == SPECS["progressive.vob"].frame_count == 12  # a share of every frame, not of a few
    assert totals["lavfi.idet.single.progressive"] >= 0.9 * len(per_frame)


def test_telecined_has_the_3_2_pattern(episode):
    spec = SPECS["telecined.vob"]
    path = episode("telecined.vob")
    assert (spec.film_frame_count, spec.frame_count, spec.film_rate) == (24, 30, Fraction(24000, 1001))
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == spec.frame_count and all(f.interlaced_frame for f in frames)
    # Frames 2 and 3 of every 5 mix two film frames (BC, CD): combed; the other three are whole.
    combing = [comb(f.to_ndarray(format="gray")) for f in frames]
    threshold = (max(combing) + min(combing)) / 2
    assert [j for j, c in enumerate(combing) if c > threshold] == [j for j in range(30) if j % 5 in (2, 3)]
    # The field markers show the pulldown: AA BB BC CD DD.
    rgb = [f.to_ndarray(format="rgb24") for f in frames]
    tops, bottoms = markers(rgb, spec, "top"), markers(rgb, spec, "bottom")
    assert list(zip(tops, bottoms, strict=True)) == field_sources(spec)
    assert list(zip(tops, bottoms, strict=True))[:5] == [(0, 0), (1, 1), (1, 2), (2, 3), (3, 3)]
    with pytest.raises(MarkerError, match="^no readable frame marker"):
        read_marker(rgb[2], spec.width, spec.height)  # a combed frame's marker is never misread
    # idet: a repeated field in 2 of every 5 frames (the 3:2 signature, one top and one bottom); its
    # single-frame verdict is "tff" for 4 of 5 frames (with motion in every film frame only AA looks
    # progressive), so idet's tff/progressive counts alone cannot tell telecine from interlace.
    per_frame, totals = idet(path)
    repeated = [m["lavfi.idet.repeated.current_frame"] for m in per_frame]
    assert repeated[:10] == ["neither", "neither", "top", "neither", "bottom"] * 2
    assert totals["lavfi.idet.repeated.top"] == totals["lavfi.idet.repeated.bottom"] == 6
    single = [m["lavfi.idet.single.current_frame"] for m in per_frame]
    assert single[::5] == ["progressive"] * 6 and collections.Counter(single)["tff"] == 24


def test_telecined_inverts_to_every_film_frame_once(episode):
    spec = SPECS["telecined.vob"]
    path = episode("telecined.vob")
    n = spec.film_frame_count
    # Field matching alone gives 30 whole frames: every film frame, in order, one of each 4 twice.
    matched = run_filters(path, [("fieldmatch", "order=tff:combmatch=full")])
    rgb = [f.to_ndarray(format="rgb24") for f in matched]
    film = markers(rgb, spec)
    assert markers(rgb, spec, "top") == markers(rgb, spec, "bottom") == film
    assert film == sorted(film) and sorted(set(film)) == list(range(n)) and len(film) == spec.frame_count
    # With decimate, 24 frames. FFmpeg's decimate compares the first frame with itself (a difference of
    # 0), so in the first cycle it drops film frame 0 instead of the duplicate: a pipeline must cope.
    ivtc = markers(
        (f.to_ndarray(format="rgb24") for f in run_filters(path, [("fieldmatch", "order=tff"), ("decimate", None)])),
        spec,
    )
    assert len(ivtc) == n and ivtc[1:] == list(range(1, n)) and ivtc[0] in (0, 1)


def test_telecine_matches_ffmpeg_telecine_filter():
    # The numpy pulldown is exactly telecine=first_field=top:pattern=23.
    spec = EpisodeSpec(width=128, height=96, seconds=0.5, scan="telecined", marker=True, audio=())
    film = list(_pictures(spec, spec.film_frame_count))
    graph = av.filter.Graph()
    nodes = [
        graph.add("buffer", "video_size=128x96:pix_fmt=rgb24:time_base=1001/24000:frame_rate=24000/1001"),
        graph.add("format", "gbrp"),
        graph.add("telecine", "first_field=top:pattern=23"),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    for a, b in zip(nodes, nodes[1:], strict=False):
        a.link_to(b)
    graph.configure()
    out = []
    for i, picture in enumerate([*film, None]):
        frame = None
        if picture is not None:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1001, 24000)
        graph.push(frame)
        while True:
            try:
                out.append(graph.pull().to_ndarray())
            except (av.error.BlockingIOError, av.error.EOFError):
                break
    mine = list(_rgb_frames(spec))
    assert len(mine) == len(out) == spec.frame_count == 15
    assert all(np.array_equal(a, b) for a, b in zip(mine, out, strict=True))


# ---------------------------------------------------------------------------------------------
# Markers, holds, pans, gradients


def test_markers_survive_upscale_reencode_and_downscale(episode, tmp_path):
    spec = SPECS["odd.webm"]
    frames = decoded(episode("odd.webm"))
    # 2x nearest neighbour (odd sizes stay odd: 1706x958 is even here), re-encoded badly with H.264.
    big = [np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in frames]
    height, width = big[0].shape[:2]
    copy = tmp_path / "upscaled.mkv"
    with av.open(str(copy), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"crf": "35", "preset": "ultrafast"}
        for i, picture in enumerate(big):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    expected = list(range(spec.frame_count))
    assert markers(decoded(copy), spec) == expected
    with av.open(str(copy)) as c:  # and scaled back to the source size, bicubic
        small = [
            f.reformat(width=spec.width, height=spec.height, format="rgb24", interpolation="BICUBIC").to_ndarray()
            for f in c.decode(video=0)
        ]
    assert markers(small, spec) == expected


def test_read_marker_refuses_what_it_cannot_read():
    picture = np.full((144, 256, 3), 128, np.uint8)
    with pytest.raises(MarkerError, match="^no readable frame marker"):
        read_marker(picture, 256, 144)
    with pytest.raises(ValueError, match="source-sized"):
        read_marker(np.zeros((288, 512, 3), np.uint8), 256, 144, field="top")
    # Other sample types: 16-bit RGB and float.
    spec = EpisodeSpec(seconds=0.25, marker=True, audio=())
    picture = next(_pictures(spec, 2))
    assert read_marker(picture.astype(np.uint16) * 257, 256, 144) == 0
    assert read_marker(picture / 255.0, 256, 144) == 0
    assert marker_height(256, 144) == 8 and marker_height(720, 480) == 24


def test_holds_on_twos_and_threes(episode):
    spec = SPECS["holds.mkv"]
    drawings = new_drawings(spec)
    assert drawings == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]
    frames = decoded(episode("holds.mkv"))
    assert len(frames) == spec.frame_count == 24  # every frame, before the pairwise differences below
    assert markers(frames, spec) == list(range(spec.frame_count))
    top = marker_height(spec.width, spec.height)  # the marker changes every frame: compare below it
    changes = [
        np.abs(a[top:].astype(int) - b[top:].astype(int)).mean() for a, b in zip(frames, frames[1:], strict=False)
    ]
    new = [i + 1 for i, d in enumerate(changes) if d > 5]
    assert new == drawings[1:]
    held = [d for i, d in enumerate(changes) if i + 1 not in drawings]
    assert 0 < max(held) < 3  # re-encoded copies of one drawing: codec noise only, never identical
    assert min(d for i, d in enumerate(changes) if i + 1 in drawings) > 10


def test_slow_pan_moves_one_pixel_a_frame(episode):
    spec = SPECS["slow_pan.mkv"]
    top = marker_height(spec.width, spec.height)
    frames = [f[top:].astype(int) for f in decoded(episode("slow_pan.mkv"), "gray")]
    # Every frame first: with none or one decoded, the pairwise check below would check nothing.
    assert len(frames) == spec.frame_count == 12
    m = 8
    for a, b in zip(frames, frames[1:], strict=False):
        errors = {s: np.abs(b[:, m:-m] - a[:, m + s : a.shape[1] - m + s]).mean() for s in range(-3, 4)}
        assert min(errors, key=errors.get) == 1 and errors[1] < 1


@pytest.mark.parametrize("name, levels, low, high", [("gradient10.mkv", 81, 240, 320), ("gradient8.mkv", 21, 60, 80)])
def test_gradient(episode, name, levels, low, high):
    spec = SPECS[name]
    with av.open(str(episode(name))) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == spec.frame_count
    for frame in frames:
        assert frame.format.name == spec.pix_fmt
        dtype = np.uint16 if "10" in spec.pix_fmt else np.uint8
        luma = np.frombuffer(frame.planes[0], dtype).reshape(frame.height, -1)[:, : frame.width]
        # Lossless: every row the same exact ramp, no noise.
        assert (luma == luma[0]).all() and len(np.unique(luma[0])) == levels
        assert (luma[0].min(), luma[0].max()) == (low, high) and (np.diff(luma[0].astype(int)) >= 0).all()


# ---------------------------------------------------------------------------------------------
# The spec


def test_spec_defaults_follow_container_and_scan():
    assert [EpisodeSpec(container=c).video_codec for c in ("mkv", "webm", "vob", "ts", "avi")] == [
        "libx264",
        "libvpx-vp9",
        "mpeg2video",
        "mpeg2video",
        "mpeg4",
    ]
    vob = EpisodeSpec(container="vob")
    assert [t.codec for t in vob.audio] == ["ac3", "mp2"]
    assert (vob.ass_subtitles, vob.srt_subtitles, vob.chapters) == (False, False, False)
    assert EpisodeSpec(container="ts").start_time == 1.4 and EpisodeSpec().start_time is None
    assert EpisodeSpec().rate == Fraction(24000, 1001) and EpisodeSpec(scan="interlaced").rate == Fraction(30000, 1001)
    for spec in (vob, EpisodeSpec(container="webm"), EpisodeSpec(scan="telecined", hold_pattern=[2, 3])):
        assert EpisodeSpec(**spec.__dict__) == spec
        hash(spec)
    telecined = EpisodeSpec(scan="telecined", seconds=0.5, audio=())
    assert telecined.film_frame_count == 12 and telecined.frame_count == 15
    assert frame_times(telecined)[1] == Fraction(1001, 30000)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=853, height=479), "even"),  # libx264 4:2:0
        (dict(container="webm", width=853, height=479, content="gradient"), "even"),
        (dict(container="avi", ass_subtitles=True), "cannot carry"),
        (dict(container="ts", srt_subtitles=True), "cannot carry"),
        (dict(container="vob", cover_image=True), "cover_image"),
        (dict(container="vob", video_codec="libx264"), "video codecs"),
        (dict(container="vob", audio=(AudioTrack("aac"),)), "audio codecs"),
        (dict(container="avi", vfr=True), "vfr"),
        (dict(start_time=1.0), "start_time"),
        (dict(scan="interlaced", video_codec="libx265"), "interlaced"),
        (dict(scan="interlaced", hold_pattern=(2,)), "hold_pattern"),
        (dict(motion="slow_pan", hold_pattern=(2,)), "hold_pattern"),
        (dict(hold_pattern=(0,)), "hold_pattern"),
        (dict(content="gradient", scan="telecined"), "gradient"),
        (dict(width=64, height=48, marker=True), "marker"),
        (dict(scan="sideways"), "scan"),
    ],
)
def test_spec_refuses(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EpisodeSpec(**kwargs)

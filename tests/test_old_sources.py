"""Old sources: anamorphic DVD video, odd sizes, 10-bit, legacy containers, fields, held frames."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_MODEL
from PIL import Image
from videotools import exact_rgb_frames, frame_times, psnr

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode, mouth_box, mouth_open, new_drawings, read_marker

pytestmark = pytest.mark.slow


# The model's 2x against PIL's bicubic resize of the source, both to the output's size: measured
# 34.0 dB with --square-pixels, 34.1 without; the left 1280 of the 1440 columns instead of the
# resize (a crop), 15.4 dB.
RESIZE_DB = 30


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
    # The picture: the whole source frame, resampled. Against PIL's bicubic of the decoded source
    # to the output's size (an independent resize): a crop or a shift would be far below this.
    source_rgb = exact_rgb_frames(source)[0]
    expected = Image.fromarray(np.clip(source_rgb + 0.5, 0, 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    got = exact_rgb_frames(out)[0]
    assert psnr(got, np.asarray(expected, np.float64)) >= RESIZE_DB, psnr(got, np.asarray(expected, np.float64))


def _markers(path: Path, width: int, height: int) -> list[int]:
    with av.open(str(path)) as f:
        return [read_marker(frame.to_ndarray(format="rgb24"), width, height) for frame in f.decode(video=0)]


def _idet(path: Path) -> dict[str, float]:
    """FFmpeg's idet over every frame of a file: the final counts."""
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=stream), graph.add("idet"), graph.add("buffersink")]
        chain[0].link_to(chain[1])
        chain[1].link_to(chain[2])
        graph.configure()
        last = None
        for frame in f.decode(stream):
            graph.push(frame)
            while True:
                try:
                    last = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    break
    counts = {k.removeprefix("lavfi.idet.multiple."): v for k, v in last.metadata.items() if "multiple." in k}
    return {k: float(v) for k, v in counts.items() if k != "current_frame"}


@pytest.mark.parametrize("field_rate", [False, True])
def test_true_interlace_becomes_progressive(tmp_path, field_rate, capsys):
    spec = EpisodeSpec(container="vob", scan="interlaced", width=256, height=144, seconds=1.0)
    source = make_episode(tmp_path / "i.vob", spec)
    assert _idet(source)["tff"] > 0.9 * spec.frame_count
    out = tmp_path / "i.mkv"
    extra = ["--field-rate"] if field_rate else []
    assert main([str(source), "-o", str(out), "--segment-seconds", "0.4", *FAST_MODEL, *extra]) == 0
    assert "fields interlaced" in capsys.readouterr().err
    counts = _idet(out)
    frames = spec.frame_count * (2 if field_rate else 1)
    assert counts["tff"] + counts["bff"] == 0 and counts["progressive"] > 0.5 * frames, counts
    with av.open(str(out)) as f:
        rate = Fraction(60000 if field_rate else 30000, 1001)
        assert float(f.streams.video[0].average_rate) == pytest.approx(float(rate), rel=1e-3)  # ms clock
    assert len(frame_times(out)) == frames


def test_hard_telecine_gives_back_exactly_the_film_frames(tmp_path, capsys):
    spec = EpisodeSpec(container="vob", scan="telecined", marker=True, width=256, height=144, seconds=2.0)
    source = make_episode(tmp_path / "t.vob", spec)
    out = tmp_path / "t.mkv"
    # Short segments, so that several segment boundaries fall inside the pulldown pattern.
    assert main([str(source), "-o", str(out), "--segment-seconds", "0.3", *FAST_MODEL]) == 0
    assert "telecined" in capsys.readouterr().err
    assert _markers(out, spec.width, spec.height) == list(range(spec.film_frame_count))
    times = frame_times(out)
    step = 1001 / 24000
    assert all(abs(b - a - step) < 0.0011 for a, b in zip(times, times[1:], strict=False))  # Matroska: ms
    with av.open(str(out)) as f:
        assert f.streams.video[0].average_rate == Fraction(24000, 1001)


LEGACY = {
    "avi": dict(container="avi"),  # MPEG-4 Part 2 (XviD) with B-frames
    "vob": dict(container="vob"),  # MPEG-2 in MPEG-PS
    "ts": dict(container="ts"),  # MPEG-2 in MPEG-TS, starting at 1.4 s
    "webm": dict(container="webm"),  # VP9
    "h264-10bit": dict(video_codec="libx264", pix_fmt="yuv420p10le"),
}


@pytest.mark.parametrize("kind", LEGACY)
def test_legacy_containers_give_every_frame_once_in_order(tmp_path, kind):
    spec = EpisodeSpec(**LEGACY[kind], marker=True, width=128, height=96, seconds=2.0, gop_seconds=0.5)
    container = spec.container
    source = make_episode(tmp_path / f"e.{container}", spec)
    out = tmp_path / "out.mkv"
    assert main([str(source), "-o", str(out), "--segment-seconds", "0.5", "--quiet", *FAST_MODEL]) == 0
    assert _markers(out, spec.width, spec.height) == list(range(spec.frame_count))
    # Each frame at its time on the source's clock (a TS starts at 1.4 s).
    with av.open(str(source)) as f:
        stream = f.streams.video[0]
        first = min(float(p.pts * stream.time_base) for p in f.demux(stream) if p.size and p.pts is not None)
    assert frame_times(out)[0] == pytest.approx(first, abs=0.0011)


def test_odd_size_vp9_webm(tmp_path):
    spec = EpisodeSpec(container="webm", width=853, height=479, seconds=0.1, audio=())
    source = make_episode(tmp_path / "odd.webm", spec)
    out = tmp_path / "odd.mkv"
    assert main([str(source), "-o", str(out), "--quiet", *FAST_MODEL]) == 0
    with av.open(str(out)) as f:
        stream = f.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1706, 958)
    assert len(frame_times(out)) == len(frame_times(source))


def test_ten_bit_gradient_keeps_its_levels(tmp_path):
    spec = EpisodeSpec(content="gradient", video_codec="libx265", pix_fmt="yuv420p10le", width=256, height=64,
                       seconds=0.1, audio=())  # fmt: skip
    source = make_episode(tmp_path / "g.mkv", spec)
    levels = {}
    for name, pix_fmt in (("10-bit", "yuv420p10le"), ("8-bit", "yuv420p")):
        out = tmp_path / f"g{name}.mkv"
        assert main([str(source), "-o", str(out), "--pix-fmt", pix_fmt, "--crf", "0", "--quiet"]) == 0
        with av.open(str(out)) as f:
            frame = next(f.decode(video=0))
        dtype = np.uint8 if pix_fmt == "yuv420p" else np.dtype("<u2")
        plane = frame.planes[0]
        luma = np.frombuffer(plane, dtype)[: plane.height * plane.line_size // np.dtype(dtype).itemsize]
        luma = luma.reshape(plane.height, -1)[:, : plane.width]
        levels[name] = len(np.unique(luma))
    with av.open(str(source)) as f:
        plane = next(f.decode(video=0)).planes[0]
        source_levels = len(np.unique(np.frombuffer(plane, np.dtype("<u2"))[: plane.height * plane.line_size // 2]
                                      .reshape(plane.height, -1)[:, : plane.width]))  # fmt: skip
    # The 10-bit path keeps the ramp's levels (measured: 79 of 81; the model moves the two at its
    # ends); an 8-bit path keeps 21. A ramp over R 8-bit steps has 4R + 1 levels in 10 bits and
    # R + 1 in 8, so no path can reach the 4x the issue asked for: (4R + 1) / (R + 1) < 4.
    assert levels["10-bit"] >= source_levels - 3, (levels, source_levels)
    assert levels["10-bit"] >= 3.7 * levels["8-bit"], levels


def _run_json(args: list[str], capsys) -> dict:
    assert main([*args, "--json-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return next(e for e in lines if e["event"] == "done")


def _decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="rgb24") for frame in f.decode(video=0)]


def test_held_drawings_reuse_the_model_result(tmp_path, capsys):
    # CRF 16: the quality of a good fansub encode or a DVD's MPEG-2.
    spec = EpisodeSpec(width=128, height=96, seconds=2.0, hold_pattern=(2, 3), audio=(), crf=16)
    source = make_episode(tmp_path / "holds.mkv", spec)
    runs = {}
    for mode in ("auto", "off"):
        out = tmp_path / f"{mode}.mkv"
        # Lossless output (x264 at CRF 0), so that the comparison sees reuse, not encoder noise.
        args = [str(source), "-o", str(out), "--reuse", mode, "--codec", "x264", "--crf", "0"]
        runs[mode] = (_run_json(args, capsys), _decoded_rgb(out))
    done, frames = runs["auto"]
    assert done["computed_frames"] + done["reused_frames"] == spec.frame_count
    assert done["computed_frames"] <= 0.6 * spec.frame_count, done
    assert done["computed_frames"] >= len(new_drawings(spec))  # never fewer than the drawings
    scores = [psnr(a, b) for a, b in zip(frames, runs["off"][1], strict=True)]
    assert min(scores) >= 45, min(scores)


def test_a_mouth_moving_on_a_still_picture_is_never_reused(tmp_path, capsys):
    """Local motion: a mouth opens and closes on a still face. The whole picture differs by less than
    the noise bound (reuse.MAX_SQUARED_DIFFERENCE); the 8x8 block rule is what keeps a new mouth
    from being taken for a held frame."""
    spec = EpisodeSpec(width=320, height=240, seconds=1.0, motion="mouth", audio=(), crf=16)
    source = make_episode(tmp_path / "mouth.mkv", spec)
    out = tmp_path / "auto.mkv"
    done = _run_json([str(source), "-o", str(out), "--codec", "x264", "--crf", "0"], capsys)
    opened = [mouth_open(i) for i in range(spec.frame_count)]
    changes = 1 + sum(a != b for a, b in zip(opened, opened[1:], strict=False))
    assert done["computed_frames"] >= changes, done
    assert done["reused_frames"] > 0, done  # the still frames in between are reused: reuse was on
    # Each output frame shows the mouth as its source frame does: dark where open, grey where shut.
    y, x, h, w = (2 * v for v in mouth_box(spec))
    levels = [frame[y : y + h, x : x + w].mean() for frame in _decoded_rgb(out)]
    assert [level < 175 for level in levels] == opened, levels


def test_a_slow_pan_is_never_taken_for_a_held_frame(tmp_path, capsys):
    spec = EpisodeSpec(width=128, height=96, seconds=1.0, motion="slow_pan", audio=())
    source = make_episode(tmp_path / "pan.mkv", spec)
    outs = {mode: tmp_path / f"{mode}.mkv" for mode in ("auto", "off")}
    lossless = ["--codec", "x264", "--crf", "0"]
    done = _run_json([str(source), "-o", str(outs["auto"]), *lossless], capsys)
    _run_json([str(source), "-o", str(outs["off"]), "--reuse", "off", *lossless], capsys)
    assert done["reused_frames"] == 0, done
    scores = [psnr(a, b) for a, b in zip(_decoded_rgb(outs["auto"]), _decoded_rgb(outs["off"]), strict=True)]
    assert min(scores) >= 50, min(scores)

"""The video job end to end: remaster generated episodes and read the results back independently."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from videotools import area_downscale, exact_rgb_frames, flat_mask, frame_times, psnr, stream_payloads

from remaster.cli import main
from remaster.demo.samples import AudioTrack, EpisodeSpec, make_episode
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.models.loader import load_model

pytestmark = pytest.mark.slow

# Small and short, with a keyframe every half second, so that 0.5 s segments give several.
SMALL = dict(width=96, height=64, seconds=2.0, gop_seconds=0.5)
# For picture quality: the synthetic cels are so dense in edges that at 96x64 the model alone,
# scaled back, is only 27 dB from its input; from 256x144 up it is above 30 dB
# (measured: 30.3 at 256x144, 31.1 at 320x240).
QUALITY = dict(width=320, height=240, seconds=1.0, gop_seconds=0.25)
FAST = ["--segment-seconds", "0.5", "--quiet"]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("episodes")
    specs = {
        "mkv": EpisodeSpec(**QUALITY, cover_image=True),
        "mp4": EpisodeSpec(**SMALL, container="mp4"),
        "vfr": EpisodeSpec(**SMALL, vfr=True, audio=(AudioTrack("flac", "jpn", "FLAC", default=True),)),
    }
    return {name: make_episode(folder / f"{name}.{spec.container}", spec) for name, spec in specs.items()}


@pytest.fixture(scope="module")
def remastered(episodes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "episode.mkv"
    assert main([str(episodes["mkv"]), "-o", str(out), "--preset", "2x-conservative", "--segment-seconds", "0.25"]) == 0
    return out


def _streams(path: Path) -> list[dict]:
    with av.open(str(path)) as container:
        rows = []
        for s in container.streams:
            metadata = {k.lower(): v for k, v in s.metadata.items() if k.lower() not in ("duration", "encoder")}
            rows.append({"type": s.type, "disposition": int(s.disposition), "metadata": metadata})
        return rows


def test_picture_is_scaled_with_every_frame_at_its_time(episodes, remastered):
    with av.open(str(remastered)) as out:
        stream = out.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)
        assert stream.codec_context.name == "hevc"
        frame = next(out.decode(stream))
        assert frame.format.name == "yuv420p10le"
        # BT.709 matrix, primaries and transfer (AVCOL_* = 1), limited range (1).
        assert (frame.colorspace, frame.color_primaries, frame.color_trc, frame.color_range) == (1, 1, 1, 1)
    assert frame_times(remastered) == frame_times(episodes["mkv"])


def test_scaled_back_it_matches_the_source(episodes, remastered):
    source = exact_rgb_frames(episodes["mkv"])
    output = exact_rgb_frames(remastered)
    assert len(source) == len(output)
    scores, shifts = [], []
    for src, out in zip(source, output, strict=True):
        back = area_downscale(out, 2)
        scores.append(psnr(src, back))
        flat = flat_mask(src)
        shifts.append((back[flat] - src[flat]).mean(axis=0))
    assert np.mean(scores) >= 30, np.mean(scores)
    mean_shift = np.abs(np.mean(shifts, axis=0))
    assert (mean_shift <= 1.0).all(), mean_shift


def test_every_other_stream_is_kept_bit_exact(episodes, remastered):
    source, output = episodes["mkv"], remastered
    assert stream_payloads(output) == stream_payloads(source)
    # The new video track's title describes it (tests/test_output_tags.py); all else is as it was.
    new, old = _streams(output), _streams(source)
    assert new[0]["metadata"].pop("title") == "HEVC 640x480 10-bit, remaster 2x-conservative"
    assert old[0]["metadata"].pop("title").startswith("H.264 240p")
    assert new == old
    with av.open(str(source)) as a, av.open(str(output)) as b:
        assert [s.data for s in a.streams.attachments] == [s.data for s in b.streams.attachments]
        assert a.chapters() == b.chapters()
        tags = {k: v for k, v in a.metadata.items() if k.lower() != "encoder"}
        assert tags == {k: v for k, v in b.metadata.items() if k.lower() != "encoder"}
        # ASS styles live in the codec header.
        subs = [(s.codec_context.extradata) for s in a.streams.subtitles]
        assert subs == [(s.codec_context.extradata) for s in b.streams.subtitles]


def _audio_packets(path: Path) -> list[list[bytes]]:
    """The bytes of every audio packet, track by track: what a copy keeps and a re-encode cannot."""
    with av.open(str(path)) as container:
        audio = [s.index for s in container.streams.audio]
    payloads = stream_payloads(path)
    return [[data for _, data in payloads[index]] for index in audio]


def test_mp4_source_to_mkv_and_to_mp4(episodes, tmp_path, capsys):
    source = episodes["mp4"]
    mkv, mp4 = tmp_path / "a.mkv", tmp_path / "b.mp4"
    assert main([str(source), "-o", str(mkv), "--preset", "2x-conservative", *FAST]) == 0
    assert frame_times(mkv) == pytest.approx(frame_times(source), abs=0.0006)  # Matroska counts in ms
    assert _audio_packets(mkv) == _audio_packets(source)
    make_episode(tmp_path / "c.mkv", EpisodeSpec(**SMALL, cover_image=True))
    assert (
        main([str(tmp_path / "c.mkv"), "-o", str(mp4), "--preset", "2x-conservative", "--segment-seconds", "0.5"]) == 0
    )
    err = capsys.readouterr().err
    assert "DejaVuSans.ttf" in err and "MP4 cannot carry attachments" in err
    assert "to mov_text (styling lost)" in err
    with av.open(str(mp4)) as out:
        kinds = [s.type for s in out.streams if not s.disposition & av.stream.Disposition.attached_pic]
        assert kinds.count("audio") == 2 and kinds.count("subtitle") == 2
        assert {s.codec_context.name for s in out.streams.subtitles} == {"mov_text"}
    # Both audio tracks copied, not re-encoded: every packet's bytes, in order, as in the source.
    assert _audio_packets(mp4) == _audio_packets(tmp_path / "c.mkv") and len(_audio_packets(mp4)) == 2
    data = mp4.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart


def test_variable_frame_rate_stays_variable(episodes, tmp_path):
    source = episodes["vfr"]
    out = tmp_path / "vfr.mkv"
    assert main([str(source), "-o", str(out), *FAST]) == 0
    times = frame_times(out)
    assert times == frame_times(source)
    assert len({round(b - a, 3) for a, b in zip(times, times[1:], strict=False)}) > 1


def test_time_range_remasters_only_those_frames(episodes, tmp_path):
    source = episodes["vfr"]
    out = tmp_path / "range.mkv"
    assert main([str(source), "-o", str(out), "--start", "0.5", "--end", "1.25", *FAST]) == 0
    wanted = [t for t in frame_times(source) if 0.5 - 1e-6 <= t < 1.25]
    assert frame_times(out) == wanted
    audio = [t for t, _ in stream_payloads(out)[1]]
    assert 0.4 <= audio[0] <= 0.55 and audio[-1] <= 1.35


def _chapters(path: Path) -> list[tuple[str, float, float]]:
    with av.open(str(path)) as f:
        return [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]))
            for c in f.chapters()
        ]


def _clock_starts(path: Path) -> list[float]:
    with av.open(str(path)) as f:
        return [float(s.start_time * s.time_base) for s in f.streams if s.type in ("video", "audio", "subtitle")]


def test_a_scene_keeps_chapters_on_the_clock_of_its_streams(tmp_path):
    """`--start 1 --end 2` of an episode with chapters at 0, 0.6 and 1.8 s: the streams stay on the
    source's clock (first frame at 1.0 s and a bit), and so do the chapters, clipped to the scene."""
    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=3.0, gop_seconds=0.25))
    assert [title for title, _, _ in _chapters(source)] == ["Opening", "Part A", "Part B"]
    out = tmp_path / "scene.mkv"
    assert main([str(source), "-o", str(out), "--start", "0:01", "--end", "0:02", "--codec", "x264", *FAST]) == 0
    first_frame = frame_times(out)[0]
    chapters = _chapters(out)
    assert [title for title, _, _ in chapters] == ["Part A", "Part B"]
    assert 1.0 <= first_frame < 1.05 and abs(chapters[0][1] - first_frame) < 0.05  # one frame at 24 fps
    assert chapters[1][1] == pytest.approx(1.8, abs=1e-3)  # inside the scene: where the source has it
    assert chapters[-1][2] <= 2.05
    assert min(_clock_starts(out)) >= 1.0  # every stream on the same clock as the chapters


def test_a_scene_of_an_mp4_with_mov_text_subtitles_cuts_to_mp4(episodes, tmp_path):
    # The cut of the timed streams passes through Matroska, which carries mov_text as srt.
    out = tmp_path / "scene.mp4"
    assert main([str(episodes["mp4"]), "-o", str(out), "--start", "0.5", "--end", "1.5", *FAST]) == 0
    with av.open(str(episodes["mp4"])) as f:
        assert [s.codec_context.name for s in f.streams.subtitles] == ["mov_text"] * len(f.streams.subtitles) > []
        wanted = len(f.streams.subtitles)
    with av.open(str(out)) as f:
        assert [s.codec_context.name for s in f.streams.subtitles] == ["mov_text"] * wanted
    # The same frames, at the output's MP4 time base (1 ms here against the source's finer one).
    wanted = [t for t in frame_times(episodes["mp4"]) if 0.5 - 1e-6 <= t < 1.5]
    assert np.allclose(frame_times(out), wanted, atol=1e-3)
    # MP4's chapters too share the streams' clock: each ends where the source's does, within the
    # scene. (MP4's chapter track has no gap before its first chapter: that one reads as from 0.)
    in_scene = [(t, min(end, 1.5)) for t, start, end in _chapters(episodes["mp4"]) if end > 0.5 and start < 1.5]
    assert [(t, round(end, 1)) for t, _, end in _chapters(out)] == [(t, round(end, 1)) for t, end in in_scene]


def test_presets_carry_encoder_settings_that_options_override(tmp_path, capsys):
    assert main(["presets", "--show", "4x-conservative"]) == 0
    shown = capsys.readouterr().out
    assert 'codec = "x265"' in shown and "crf = 16" in shown and "segment_seconds = 30" in shown
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "mine.toml").write_text(
        '[model]\nname = "2x-conservative"\n[encoder]\ncodec = "x264"\ncrf = 23\npix_fmt = "yuv420p"\n'
    )
    source = make_episode(tmp_path / "e.mkv", EpisodeSpec(**{**SMALL, "seconds": 0.6}, chapters=False))
    out = tmp_path / "o.mkv"
    env = pytest.MonkeyPatch()
    env.setenv("REMASTER_HOME", str(home))
    try:
        assert main([str(source), "-o", str(out), "--preset", "mine", "--quiet"]) == 0
        with av.open(str(out)) as f:
            assert f.streams.video[0].codec_context.name == "h264"
        assert main([str(source), "-o", str(out), "--preset", "mine", "--codec", "x265", "--overwrite", "--quiet"]) == 0
        with av.open(str(out)) as f:
            assert f.streams.video[0].codec_context.name == "hevc"
            assert next(f.decode(video=0)).format.name == "yuv420p10le"  # x265's own default, not the preset's
    finally:
        env.undo()


def test_demo_makes_and_remasters_an_episode(tmp_path):
    assert main(["demo", str(tmp_path), "--size", "64x48", "--seconds", "1"]) == 0
    out = tmp_path / "episode.2x-conservative.mkv"
    with av.open(str(out)) as f:
        assert (f.streams.video[0].codec_context.width, f.streams.video[0].codec_context.height) == (128, 96)
        assert len(f.streams.audio) == 2 and len(f.streams.subtitles) == 2
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the work folder is gone


def test_ten_bit_source_goes_through_at_16_bits(tmp_path):
    """The pipeline's frames equal the engine's own result on the exactly decoded 16-bit RGB,
    up to the encoder's loss: nothing in between rounds to 8 bits or shifts the picture."""
    spec = EpisodeSpec(**{**SMALL, "seconds": 0.5}, video_codec="libx265", pix_fmt="yuv420p10le", audio=())
    source = make_episode(tmp_path / "ten.mkv", spec)
    out = tmp_path / "ten.out.mkv"
    # 4:4:4 at near-lossless quality, so that what is left is the pipeline's own error.
    assert main([str(source), "-o", str(out), "--pix-fmt", "yuv444p10le", "--crf", "2", "--quiet"]) == 0
    assert frame_times(out) == frame_times(source)
    upscaler = TorchUpscaler(load_model("2x-conservative"))
    scores = []
    for src, dst in zip(exact_rgb_frames(source), exact_rgb_frames(out), strict=True):
        direct = upscaler.upscale(np.round(src / 255 * 65535).astype(np.uint16)[None])[0] / 65535 * 255
        scores.append(psnr(direct, dst))
    assert min(scores) >= 40, scores  # measured 43-46 dB
    with av.open(str(out)) as f:
        assert next(f.decode(video=0)).format.name == "yuv444p10le"


def test_sd_source_is_converted_to_bt709_for_hd_output(tmp_path):
    spec = EpisodeSpec(width=208, height=200, seconds=0.15, colour="smpte170m", audio=(), sar=(8, 9))
    source = make_episode(tmp_path / "sd.mkv", spec)
    out = tmp_path / "sd.out.mkv"
    assert main([str(source), "-o", str(out), "--preset", "3x-conservative", "--quiet"]) == 0
    with av.open(str(out)) as f:
        stream = f.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (624, 600)
        assert stream.sample_aspect_ratio == Fraction(8, 9)  # the display aspect stays 4:3
        assert next(f.decode(stream)).colorspace == 1
    src, dst = exact_rgb_frames(source), exact_rgb_frames(out)
    flat = flat_mask(src[0])
    shift = np.abs((area_downscale(dst[0], 3)[flat] - src[0][flat]).mean(axis=0))
    assert (shift <= 1.0).all(), shift


@pytest.mark.parametrize(("codec", "name", "pix_fmt"), [("x264", "h264", "yuv420p"), ("svtav1", "av1", "yuv420p10le")])
def test_other_encoders(codec, name, pix_fmt, tmp_path):
    source = make_episode(tmp_path / "e.mkv", EpisodeSpec(**{**SMALL, "seconds": 0.6}, audio=()))
    out = tmp_path / "o.mkv"
    assert main([str(source), "-o", str(out), "--codec", codec, "--segment-seconds", "0.25", "--quiet"]) == 0
    with av.open(str(out)) as f:
        decoder = f.streams.video[0].codec_context.name  # libdav1d decodes AV1: compare codec ids
        assert av.codec.Codec(decoder, "r").id == av.codec.Codec(name, "r").id
        assert next(f.decode(video=0)).format.name == pix_fmt
    assert frame_times(out) == frame_times(source)


def test_a_season_rerun_skips_finished_episodes(tmp_path, capsys):
    """After a crash, the same command goes on: finished outputs are skipped, not refused or redone."""
    sources = [
        make_episode(tmp_path / f"ep: {n}.mkv", EpisodeSpec(**{**SMALL, "seconds": 0.5}, audio=())) for n in (1, 2)
    ]
    folder = tmp_path / "out"
    args = [str(p.relative_to(tmp_path)) for p in sources] + ["-o", "out"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # relative names with a colon: not an FFmpeg protocol
        assert main([args[0], "-o", "out/ep: 1.2x-conservative.mkv", "--quiet"]) == 0
        finished = (folder / "ep: 1.2x-conservative.mkv").stat().st_mtime_ns
        assert main(args) == 0
    assert "ep: 1.2x-conservative.mkv: exists, skipped" in capsys.readouterr().err
    assert (folder / "ep: 1.2x-conservative.mkv").stat().st_mtime_ns == finished
    assert len(frame_times(folder / "ep: 2.2x-conservative.mkv")) == len(frame_times(sources[1]))

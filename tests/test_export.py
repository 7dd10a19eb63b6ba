"""`remaster export`: every built-in target probed, the size cap, BT.709 conversion, burned-in subtitles.

Sources are small sample episodes (remaster.demo.samples); the cap is tested with user targets in a
temporary REMASTER_HOME rather than with large sources.
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from videotools import exact_rgb_frames, flat_mask, frame_times, stream_payloads

from remaster.core.errors import UsageError
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.export.job import ExportFrame, add_export_arguments, export_video, output_geometry, run_export_command
from remaster.export.targets import get_target, load_targets
from remaster.video.mux import video_title

BT709 = 1  # AVCOL_PRI/TRC/SPC_BT709
LIMITED = 1  # AVCOL_RANGE_MPEG
# target -> video codec, pixel format, audio codecs of the two sample tracks (AAC, Opus)
EXPECTED = {
    "upload-1080p-h264": ("h264", "yuv420p", ["aac", "aac"]),
    "upload-2160p-hevc": ("hevc", "yuv420p", ["aac", "aac"]),
    "upload-av1": ("av1", "yuv420p", ["aac", "opus"]),
    "archive-mkv": ("hevc", "yuv420p10le", ["aac", "opus"]),
}
# A fast lossless H.264 target: frames the burn-in leaves alone come back bit-exact.
LOSSLESS = 'container = "mp4"\n[video]\ncodec = "x264"\ncrf = 0\nspeed = "ultrafast"\n'


@pytest.fixture(autouse=True)
def user_home(tmp_path_factory, monkeypatch) -> Path:
    """An empty user folder, so that targets on this machine do not change the tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("REMASTER_HOME", str(home))
    return home


def user_target(home: Path, name: str, text: str) -> None:
    folder = home / "presets" / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    """Anamorphic 320x240 (SAR 4:3, display 16:9), two audio tracks, ASS + SRT, a font, chapters, a cover."""
    spec = EpisodeSpec(width=320, height=240, seconds=1.0, sar=(4, 3), cover_image=True)
    return make_episode(tmp_path_factory.mktemp("export") / "episode.mkv", spec)


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        frame = next(container.decode(stream))
        return {
            "codec": ctx.codec.canonical_name,
            "tag": ctx.codec_tag,
            "pix_fmt": frame.format.name,
            "size": (frame.width, frame.height),
            "sar": Fraction(stream.sample_aspect_ratio or 1),
            "colour": (frame.colorspace, frame.color_primaries, frame.color_trc, frame.color_range),
            "audio": [s.codec_context.name for s in container.streams.audio],
            "audio_indices": [s.index for s in container.streams.audio],
            "subtitles": [s.codec_context.name for s in container.streams.subtitles],
            "attachments": [s.name for s in container.streams.attachments],
            "covers": sum(1 for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic),
            "chapters": [c["metadata"].get("title") for c in container.chapters()],
            "title": container.metadata.get("title"),
        }


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order."""
    data, boxes, i = path.read_bytes(), [], 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
        boxes.append(kind.decode("latin-1"))
        i += size
    return boxes


def display_aspect(facts: dict) -> Fraction:
    width, height = facts["size"]
    return width * facts["sar"] / height


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_target(episode: Path, name: str, tmp_path: Path):
    target = get_target(name)
    report = export_video(episode, target, tmp_path / f"out{target.suffix}")
    got, source = video_facts(report.output), video_facts(episode)
    codec, pix_fmt, audio = EXPECTED[name]
    assert (got["codec"], got["pix_fmt"], got["audio"]) == (codec, pix_fmt, audio)
    assert got["colour"] == (BT709, BT709, BT709, LIMITED)
    # Display aspect 16:9 kept: upload targets resample to square pixels, the archive keeps the SAR.
    assert display_aspect(got) == display_aspect(source) == Fraction(16, 9)
    assert (got["size"], got["sar"]) == (((320, 240), Fraction(4, 3)) if name == "archive-mkv" else ((320, 180), 1))
    # Every frame, at the same times (within one frame).
    want, times = frame_times(episode), frame_times(report.output)
    assert len(times) == len(want)
    assert max(abs(a - b) for a, b in zip(times, want, strict=True)) < 1 / 23.976
    # Copied audio is bit-exact.
    copied = [i for i, (a, b) in enumerate(zip(got["audio"], ["aac", "opus"], strict=True)) if a == b]
    src_audio, out_audio = stream_payloads(episode), stream_payloads(report.output)
    for i in copied:
        want_packets = src_audio[source["audio_indices"][i]]
        assert [p for _, p in out_audio[got["audio_indices"][i]]] == [p for _, p in want_packets]
    assert got["chapters"] == source["chapters"] and got["title"] == source["title"]
    assert got["covers"] == 1
    if target.container == "mp4":
        boxes = top_level_boxes(report.output)
        assert boxes.index("moov") < boxes.index("mdat")  # faststart
        assert got["subtitles"] == ["mov_text", "mov_text"] and got["attachments"] == []
        assert any("styling lost" in note for note in report.notes)
        if codec == "hevc":
            assert got["tag"] == "hvc1"
    else:
        assert got["subtitles"] == source["subtitles"] and got["attachments"] == source["attachments"]
    print(f"{name}: {report.output.stat().st_size} bytes, {report.seconds:.2f} s")


def test_cap_keeps_display_aspect(episode: Path, user_home: Path, tmp_path: Path):
    """A user's target of a built-in's name wins; the cap downscales to fit the box, aspect kept."""
    user_target(user_home, "upload-1080p-h264", LOSSLESS + 'max_size = "160x120"\n')
    user_target(user_home, "tiny-keep-sar", LOSSLESS + 'max_size = "160x120"\nsquare_pixels = false\n')
    assert get_target("upload-1080p-h264").path.is_relative_to(user_home)
    for name, size, sar in (("upload-1080p-h264", (160, 90), 1), ("tiny-keep-sar", (120, 90), Fraction(4, 3))):
        report = export_video(episode, get_target(name), tmp_path / f"{name}.mp4")
        got = video_facts(report.output)
        assert (got["size"], got["sar"]) == (size, sar)
        assert display_aspect(got) == Fraction(16, 9)
        assert len(frame_times(report.output)) == len(frame_times(episode))


def test_geometry_rules():
    target = get_target("upload-1080p-h264").video
    # 4K is brought down to 1080p; 1440x1080 (4:3) fits and is left alone; nothing is enlarged.
    assert output_geometry(3840, 2160, Fraction(1), target) == ExportFrame(1920, 1080, Fraction(1))
    assert output_geometry(1440, 1080, Fraction(1), target) == ExportFrame(1440, 1080, Fraction(1))
    assert output_geometry(640, 360, Fraction(1), target) == ExportFrame(640, 360, Fraction(1))
    # NTSC DVD 16:9 (SAR 32:27): the pixel's longer side shrinks, 480 lines become 405, then even.
    assert output_geometry(720, 480, Fraction(32, 27), target) == ExportFrame(720, 406, Fraction(1))
    # Upscaled 4x, the same DVD is 2880x1920 -> 2880x1620 square -> fits 1920x1080.
    assert output_geometry(2880, 1920, Fraction(32, 27), target) == ExportFrame(1920, 1080, Fraction(1))
    # Keeping the SAR, the box applies to the display size: 2880x1920 at 32:27 shows as 3413x1920.
    archive = replace(target, square_pixels=False)
    assert output_geometry(2880, 1920, Fraction(32, 27), archive) == ExportFrame(1620, 1080, Fraction(32, 27))


def test_bt601_source_is_converted_to_bt709(tmp_path: Path):
    """An SD BT.601 source comes out tagged BT.709 with the same colours: each file decoded with
    its own matrix (exact decoder in videotools) agrees on flat areas, while the luma codes there
    moved (BT.709 weighs R, G, B differently), so the matrix was converted, not only retagged."""
    source = make_episode(
        tmp_path / "sd.mkv", EpisodeSpec(width=320, height=240, seconds=0.5, colour="smpte170m", audio=())
    )
    report = export_video(source, get_target("upload-1080p-h264"), tmp_path / "sd.mp4")
    assert video_facts(report.output)["colour"] == (BT709, BT709, BT709, LIMITED)
    want, got = exact_rgb_frames(source)[3], exact_rgb_frames(report.output)[3]
    flat = flat_mask(want) & flat_mask(got)
    error = np.abs(got - want)[flat].mean()
    luma_src, luma_out = (yuv_frames(path)[3][:240] for path in (source, report.output))
    moved = np.abs(luma_out - luma_src)[flat].mean()
    print(f"BT.601 -> BT.709: mean colour error {error:.2f} levels on flat areas, where luma codes moved {moved:.2f}")
    assert error < 1.0 and moved > 2


def rename_font(source: Path, dest: Path, old: str, new: str) -> Path:
    """Copy a TrueType font with `old` replaced by `new` in every string of its name table (family,
    full and PostScript names), so that it is a family no machine has installed."""
    data = bytearray(source.read_bytes())
    for i in range(struct.unpack_from(">H", data, 4)[0]):
        entry = 12 + 16 * i
        tag, _, offset, _ = struct.unpack_from(">4sIII", data, entry)
        if tag == b"name":
            break
    else:
        raise ValueError(f"{source}: no name table")
    _, count, storage = struct.unpack_from(">HHH", data, offset)
    records, strings = [], bytearray()
    for r in range(count):
        platform, encoding, language, name_id, size, start = struct.unpack_from(">6H", data, offset + 6 + 12 * r)
        codec = "mac_roman" if platform == 1 else "utf-16-be"
        text = bytes(data[offset + storage + start : offset + storage + start + size]).decode(codec)
        text = text.replace(old, new).replace(old.replace(" ", ""), new.replace(" ", ""))
        encoded = text.encode(codec)
        records.append(struct.pack(">6H", platform, encoding, language, name_id, len(encoded), len(strings)))
        strings += encoded
    table = struct.pack(">HHH", 0, count, 6 + 12 * count) + b"".join(records) + strings
    table += bytes(-len(table) % 4)
    data += bytes(-len(data) % 4)
    checksum = sum(struct.unpack(f">{len(table) // 4}I", table)) & 0xFFFFFFFF
    struct.pack_into(">4sIII", data, entry, b"name", checksum, len(data), len(table))
    dest.write_bytes(bytes(data + table))
    return dest


def remux(source: Path, dest: Path, *options: str) -> Path:
    """Copy every stream of `source` into `dest`, with extra ffmpeg output options."""
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    subprocess.run([*ffmpeg, "-map", "0", "-c", "copy", *options, str(dest)], check=True)
    return dest


def ass_events(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, style) of every event of the first subtitle track (Matroska ASS packets)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        return [
            (float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base), bytes(p).decode().split(",")[2])
            for p in container.demux(stream)
            if p.size
        ]


def yuv_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray().astype(np.int16) for frame in container.decode(video=0)]


def test_burned_subtitles_use_the_embedded_font(tmp_path: Path, user_home: Path, monkeypatch):
    """Burn-in changes exactly the frames during subtitle events, drawn with the file's own font.

    The font check: the episode embeds DejaVu Serif Bold renamed "Remaster Probe", a family no
    system has, and its ASS styles ask for that family. The attachment's MIME type is set to
    application/octet-stream, as in many older releases: ffmpeg's subtitles filter does not load
    such attachments itself, so libass can only find the font through the folder export writes
    the attachments to. The same file without the attachment is burned too: libass then falls
    back to a system font (DejaVu Sans here). Decisive: the two burns differ in the text's pixels
    by about as much as the text differs from no text at all (serif bold vs sans), the fallback
    burn did draw text, and export reports the fallback but not the embedded case. The encode is
    lossless, so frames outside every event must be bit-identical to an export without burn-in.
    """
    system_font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf")
    if not system_font.is_file():
        pytest.skip(f"needs {system_font}")
    font = rename_font(system_font, tmp_path / "RemasterProbe-Bold.ttf", "DejaVu Serif", "Remaster Probe")
    monkeypatch.setenv("REMASTER_FONT", str(font))
    spec = EpisodeSpec(width=256, height=144, seconds=2.0, audio=(), srt_subtitles=False, chapters=False)
    made = make_episode(tmp_path / "made.mkv", spec)
    embedded = remux(made, tmp_path / "embedded.mkv", "-metadata:s:t:0", "mimetype=application/octet-stream")
    missing = remux(made, tmp_path / "missing.mkv", "-map", "-0:t")
    user_target(user_home, "lossless", LOSSLESS)
    target = get_target("lossless")
    plain = yuv_frames(export_video(embedded, target, tmp_path / "plain.mp4").output)
    burned = export_video(embedded, target, tmp_path / "burned.mp4", burn_subs="default")
    fallback = export_video(missing, target, tmp_path / "fallback.mp4", burn_subs="default")
    with_font, without_font = yuv_frames(burned.output), yuv_frames(fallback.output)

    events = ass_events(embedded)
    times = frame_times(embedded)
    margin = 0.01  # libass and Matroska keep times in ms and cs: stay clear of the edges
    dialogue = [
        i for i, t in enumerate(times) if any(a + margin <= t < b - margin for a, b, s in events if s == "Default")
    ]
    outside = [i for i, t in enumerate(times) if not any(a - margin <= t < b + margin for a, b, _ in events)]
    assert len(dialogue) > 20 and len(outside) >= 3

    def changed(a: np.ndarray, b: np.ndarray) -> int:
        return int((np.abs(a - b) > 32).sum())

    for i in outside:
        assert np.array_equal(with_font[i], plain[i]) and np.array_equal(without_font[i], plain[i])
    text = [changed(with_font[i], plain[i]) for i in dialogue]
    fallback_text = [changed(without_font[i], plain[i]) for i in dialogue]
    font_difference = [changed(with_font[i], without_font[i]) for i in dialogue]
    print(
        f"burn-in, {len(dialogue)} dialogue frames, {len(outside)} frames outside events (identical): pixels changed "
        f"by text {np.median(text):.0f} (embedded font), {np.median(fallback_text):.0f} (fallback); "
        f"embedded vs fallback {np.median(font_difference):.0f}"
    )
    assert min(text) > 200 and min(fallback_text) > 200
    assert min(d / t for d, t in zip(font_difference, text, strict=True)) > 0.5
    assert not any("from this system" in note for note in burned.notes)
    assert any("Remaster Probe" in note and "from this system" in note for note in fallback.notes)
    assert burned.burned and "subtitle" in burned.burned


def test_refusals(episode: Path, tmp_path: Path, user_home: Path):
    target = get_target("upload-av1")
    existing = tmp_path / "taken.mp4"
    existing.write_bytes(b"mine")
    with pytest.raises(UsageError, match="exists; add --overwrite"):
        export_video(episode, target, existing)
    assert existing.read_bytes() == b"mine"
    with pytest.raises(UsageError, match="writes .mp4 files"):
        export_video(episode, target, tmp_path / "wrong.mkv")
    with pytest.raises(UsageError, match="no such subtitle track"):
        export_video(episode, target, tmp_path / "x.mp4", burn_subs="fre")
    with pytest.raises(UsageError, match="valid targets: archive-mkv, upload-1080p-h264"):
        get_target("nope")
    user_target(user_home, "broken", 'container = "mp4"\n[video]\ncodec = "x264"\ncfr = 18\n')
    with pytest.raises(UsageError, match=r"broken.toml: unknown \[video\] keys cfr"):
        load_targets()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]  # no partial files left behind


def test_command_default_output(episode: Path, tmp_path: Path, monkeypatch):
    """The output goes beside the input as NAME.TARGET.EXT; a relative name with the characters
    that ffmpeg's filter graphs treat specially burns in all the same, and the cover survives."""
    name = "ep: it's [1], a;b.mkv"
    (tmp_path / name).write_bytes(episode.read_bytes())
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    args = parser.parse_args([name, "--target", "archive-mkv", "--burn-subs", "--quiet"])
    assert args.burn_subs == "default"
    assert run_export_command(args) == 0
    got = video_facts(tmp_path / "ep: it's [1], a;b.archive-mkv.mkv")
    assert got["covers"] == 1 and got["subtitles"] == ["srt"]  # the burned ASS track is not kept soft


def test_surround_ac3_in_side_layout_is_encoded_to_opus(tmp_path: Path):
    """AC-3 5.1 from DVDs and broadcasts is 5.1(side), which libopus refuses: it is remapped to 5.1,
    side channels to back ones, each of the six channels still carrying its own tone."""
    tones = (300, 500, 700, 60, 1100, 1300)  # Hz: FL FR FC LFE SL SR, one each
    exprs = "|".join(f"0.3*sin({f}*2*PI*t)" for f in tones)
    source = tmp_path / "surround.mkv"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error"]
    subprocess.run(
        [*ffmpeg, "-f", "lavfi", "-i", "testsrc2=s=160x120:r=24000/1001:d=1", "-f", "lavfi", "-i",
         f"aevalsrc=exprs={exprs}:c=5.1(side):s=48000:d=1", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "ac3", "-b:a", "448k", str(source)],
        check=True,
    )  # fmt: skip
    report = export_video(source, get_target("upload-av1"), tmp_path / "out.mp4")
    assert "encoded #1 audio ac3 as opus 192k (5.1(side) as 5.1): upload-av1 copies opus, aac" in report.notes
    for path, layout in ((source, "5.1(side)"), (report.output, "5.1")):
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.layout.name == layout
            rate = stream.codec_context.sample_rate
            samples = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)[:, :rate]
        # One second: FFT bin k is k Hz. Each channel's strongest tone is the one it was given.
        assert tuple(np.abs(np.fft.rfft(samples, axis=1)).argmax(axis=1)) == tones


def _writers(pid: int, name: str) -> list[int]:
    """The child processes of `pid` whose command line names a file ending in `name` (from /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if parent == pid and any(arg.endswith(name.encode()) for arg in args):
            found.append(int(proc.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has stopped writing; whether its parent reaps it is another matter)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leftovers(output: Path, temp: Path) -> list[str]:
    return sorted([p.name for p in output.parent.glob(f".{output.name}.*")] + [p.name for p in temp.iterdir()])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds ffmpeg through /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_export_takes_its_ffmpeg_along_and_the_next_run_cleans_up(tmp_path: Path, user_home: Path, signum):
    """SIGKILL or SIGTERM to `remaster export` mid-encode: its ffmpeg dies at once, instead of going on
    to finish a partial file; what a SIGKILL leaves (the partial beside the output, the temporary
    folder) is removed by the next export to that output, which writes it."""
    source = tmp_path / "long.mkv"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error"]
    # 8 s that archive-mkv's x265 (slow preset, 10-bit) took 5 s of CPU (9 s on a busy 2-core
    # machine) to encode: an ffmpeg left running would still be at work when the test looks.
    subprocess.run(
        [*ffmpeg, "-f", "lavfi", "-i", "testsrc2=s=320x240:r=24000/1001:d=8", "-c:v", "libx264",
         "-preset", "ultrafast", str(source)],
        check=True,
    )  # fmt: skip
    temp = tmp_path / "tmp"
    temp.mkdir()
    output = tmp_path / "out.mkv"
    env = {**os.environ, "TMPDIR": str(temp), "REMASTER_HOME": str(user_home)}
    command = [sys.executable, "-m", "remaster", "export", str(source), "-o", str(output), "--quiet", "--target"]
    run = subprocess.Popen([*command, "archive-mkv"], env=env, stderr=subprocess.PIPE, text=True)
    encoders: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not encoders:
            assert run.poll() is None and time.monotonic() < deadline, "the export ended before the kill"
            encoders = _writers(run.pid, ".partial")  # not imageio-ffmpeg's `ffmpeg -version`
            time.sleep(0.05)
        time.sleep(0.5)  # into the encode
        assert all(_running(pid) for pid in encoders), "ffmpeg ended before the kill: the test proves nothing"
        run.send_signal(signum)
        _, err = run.communicate(timeout=60)
        # PR_SET_PDEATHSIG signals ffmpeg as remaster exits; 2 s is ample for it to be gone.
        deadline = time.monotonic() + 2
        while any(_running(pid) for pid in encoders) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in encoders), "ffmpeg kept running after remaster was killed"
        partials = list(tmp_path.glob(".out.mkv.*.partial"))
        sizes = [p.stat().st_size for p in partials]
        time.sleep(0.5)
        assert [p.stat().st_size for p in partials] == sizes  # nothing writes to it any more
    finally:
        for pid in encoders:  # the test's own grandchildren, if the code under test left them
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not output.exists()
    if signum == signal.SIGTERM:  # stopped like Ctrl-C: it cleans up itself
        assert run.returncode == 130 and "Traceback" not in err
        assert _leftovers(output, temp) == []
    else:
        assert run.returncode == -signal.SIGKILL
        assert len(_leftovers(output, temp)) == 2  # .out.mkv.<pid>-*.partial and remaster-export-<pid>-*
    # The next export to the same name (a fast target: the leftovers are what is tested) cleans up.
    user_target(user_home, "quick-mkv", 'container = "mkv"\n[video]\ncodec = "x264"\ncrf = 30\nspeed = "ultrafast"\n')
    done = subprocess.run([*command, "quick-mkv"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _leftovers(output, temp) == []
    assert len(frame_times(output)) == len(frame_times(source))


# What a remastered file's video track says after an mkvmerge pass: a title naming the remaster's
# encode, and mkvmerge's statistics with the track's language (FFmpeg reads them as NAME-eng).
REMASTERED_TAGS = {
    "title": "HEVC 1440x960 10-bit, remaster 2x-conservative",
    "BPS-eng": "1843200",
    "DURATION-eng": "00:10:00.000000000",
    "NUMBER_OF_FRAMES-eng": "14386",
    "NUMBER_OF_BYTES-eng": "138240000",
    "_STATISTICS_WRITING_APP-eng": "mkvmerge v81.0 ('Milliontown') 64-bit",
    "_STATISTICS_TAGS-eng": "BPS DURATION NUMBER_OF_FRAMES NUMBER_OF_BYTES",
    "COMMENT": "kept: not about the encode",
}


def _with_video_tags(source: Path, target: Path, tags: dict[str, str]) -> Path:
    """`source` remuxed, its video track's tags set (an empty value deletes one)."""
    metadata = [arg for key, value in tags.items() for arg in ("-metadata:s:v:0", f"{key}={value}")]
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(source)]
    subprocess.run([*ffmpeg, "-map", "0", "-c", "copy", *metadata, str(target)], check=True)
    return target


def _video_tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return dict(container.streams.video[0].metadata)


def test_exported_video_track_is_described_truthfully(tmp_path: Path, user_home: Path):
    """The export is a new encode: the old encode's statistics go (with their language suffix too),
    and the title says what the new track is, read from the stream; no title stays no title."""
    spec = EpisodeSpec(width=64, height=48, seconds=1.0, cover_image=False, ass_subtitles=False)
    plain = make_episode(tmp_path / "plain.mkv", spec)
    remastered = _with_video_tags(plain, tmp_path / "remastered.mkv", REMASTERED_TAGS)
    assert {k: v for k, v in _video_tags(remastered).items() if k in REMASTERED_TAGS} == REMASTERED_TAGS
    user_target(user_home, "quick-mkv", 'container = "mkv"\n[video]\ncodec = "x264"\ncrf = 30\nspeed = "ultrafast"\n')

    report = export_video(remastered, get_target("quick-mkv"), tmp_path / "out.mkv")
    tags = _video_tags(report.output)
    assert tags["title"] == video_title(report.output, "remaster export quick-mkv")
    assert tags["title"] == "H.264 64x48 8-bit, remaster export quick-mkv"
    assert (tags["COMMENT"], tags["language"]) == (REMASTERED_TAGS["COMMENT"], "jpn")
    assert not [key for key in tags if key in REMASTERED_TAGS and key not in ("title", "COMMENT")]
    # What the muxer writes for the new track itself: this encode's encoder and duration.
    assert tags["ENCODER"].endswith("libx264") and tags["DURATION"].startswith("00:00:01.0")

    # MP4 keeps a track's title as its `name`; 64x48 is within the 1080p box, so the size stays.
    report = export_video(remastered, get_target("upload-1080p-h264"), tmp_path / "out.mp4")
    assert _video_tags(report.output)["name"] == video_title(report.output, "remaster export upload-1080p-h264")

    untitled = _with_video_tags(remastered, tmp_path / "untitled.mkv", {"title": ""})
    report = export_video(untitled, get_target("quick-mkv"), tmp_path / "untitled-out.mkv")
    assert "title" not in _video_tags(report.output)


# A child that starts an ffmpeg through remaster's runner (every ffmpeg remaster starts goes through
# it: test_media_ffmpeg checks) and waits for it. The ffmpeg reads its input in real time (-re) for
# 60 s, so it is still running when the child is killed.
_RUNNER_CHILD = "from remaster.media.ffmpeg import run_ffmpeg\nrun_ffmpeg(ARGS, 'slow.mkv', 'testing')\n"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds ffmpeg through /proc (Linux)")
def test_every_ffmpeg_remaster_starts_dies_with_it(episode: Path, tmp_path: Path):
    """The short ffmpeg runs too (the mux's cover extraction and cuts, the sample maker's mux, the
    copy on one timeline): killed with remaster, they do not go on writing files nobody will use."""
    written = tmp_path / "slow.mkv"
    args = ["-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24:d=60", "-c:v", "rawvideo", str(written)]
    script = f"import sys\nfrom pathlib import Path\nARGS = {args!r}\n" + _RUNNER_CHILD
    run = subprocess.Popen([sys.executable, "-c", script, str(episode)])
    writers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not writers:
            assert run.poll() is None and time.monotonic() < deadline, "the helper ended before the kill"
            writers = _writers(run.pid, written.name)
            time.sleep(0.05)
        run.kill()
        run.wait()
        # PR_SET_PDEATHSIG signals ffmpeg as its parent exits; 2 s is ample for it to be gone.
        deadline = time.monotonic() + 2
        while any(_running(pid) for pid in writers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in writers), "ffmpeg kept running after its parent was killed"
    finally:
        for pid in writers:  # the test's own grandchildren, if the code under test left them
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

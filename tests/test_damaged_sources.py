"""Damaged and irregular sources: frames lost from the middle are found before any work and named,
and timelines remaster cannot process (a timestamp reset, shared timestamps, a picture size change)
are refused with one line saying where, never a traceback or a wrong "damaged"."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from videotools import frame_times, stream_payloads

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode, read_marker
from remaster.video.damage import find_holes
from remaster.video.probe import probe

pytestmark = pytest.mark.slow

# 3 s at 24 fps; a keyframe every half second, so that a 4 KiB hit in the middle takes out the
# rest of one cluster and the demuxer goes on at the next one.
SPEC = EpisodeSpec(
    width=64, height=48, seconds=3.0, rate=Fraction(24), gop_seconds=0.5, cover_image=False, ass_subtitles=False
)
OPTIONS = ["--segment-seconds", "0.5", "--codec", "x264", "--fields", "progressive"]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _testsrc(path: Path, size: str, rate: int, seconds: float, *extra: str) -> Path:
    source = f"testsrc2=size={size}:rate={rate}:duration={seconds}"
    _ffmpeg("-f", "lavfi", "-i", source, *extra, "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, Path]:
    """A clean episode and a copy with 4 KiB of random bytes written over the middle of the file."""
    folder = tmp_path_factory.mktemp("damaged")
    clean = make_episode(folder / "clean.mkv", SPEC)
    data = bytearray(clean.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = np.random.default_rng(12).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    broken = folder / "broken.mkv"
    broken.write_bytes(bytes(data))
    return clean, broken


def _expected_hole(clean: Path, broken: Path) -> str:
    """The hole as an independent scan sees it: frames of the clean file absent from the broken one."""
    before, after = frame_times(clean), frame_times(broken)
    missing = sorted(set(before) - set(after))
    assert len(missing) > 5, "the garbage must hit the frames for this test to mean anything"
    first = max(t for t in after if t < missing[0])
    last = min(t for t in after if t > missing[-1])
    assert not [t for t in after if first < t < last and t not in before]
    return f"{len(missing)} frames missing between {first:.3f} s and {last:.3f} s"


def test_garbage_in_the_middle_is_refused_before_any_work(damaged, tmp_path, capsys):
    clean, broken = damaged
    output = tmp_path / "out.mkv"
    assert main([str(broken), "-o", str(output), *OPTIONS]) == 2
    err = capsys.readouterr().err.strip()
    hole = _expected_hole(clean, broken)
    assert err == f"remaster: error: {broken}: damaged: {hole} (--allow-damaged to go on)", err
    assert list(tmp_path.iterdir()) == []  # no output, no work folder


def test_allow_damaged_keeps_the_hole_in_place_and_lists_it(damaged, tmp_path, capsys):
    clean, broken = damaged
    output = tmp_path / "out.mkv"
    assert main([str(broken), "-o", str(output), *OPTIONS, "--allow-damaged", "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    done = next(e for e in events if e["event"] == "done")
    hole = _expected_hole(clean, broken)
    assert f"{broken.name}: damaged, went on: {hole}" in done["notes"], done["notes"]
    # Every frame that survived keeps its time, so the frames after the hole stay where they were,
    # and the audio is the source's, packet for packet at the same times: in sync after the hole.
    assert frame_times(output) == frame_times(broken)
    assert stream_payloads(output) == stream_payloads(broken)


def test_variable_frame_rate_is_not_a_hole(tmp_path):
    # Held drawings (frames twice as long) and a 24 -> 30 fps change, with no data missing.
    spec = EpisodeSpec(width=64, height=48, seconds=2.0, vfr=True, cover_image=False)
    sample = make_episode(tmp_path / "vfr.mkv", spec)
    parts = [_testsrc(tmp_path / "a.mkv", "64x48", 24, 1), _testsrc(tmp_path / "b.mkv", "64x48", 30, 1)]
    (tmp_path / "list.txt").write_text("".join(f"file '{p}'\n" for p in parts))
    joined = tmp_path / "joined.mkv"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(joined))
    for path in (sample, joined):
        media = probe(path)
        assert len(set(np.diff(media.video.pts))) > 2, "not variable"
        assert find_holes(media) == []


def test_timestamp_reset_is_named_not_called_damaged(tmp_path, capsys):
    parts = [_testsrc(tmp_path / f"{n}.ts", "64x48", 24, 1) for n in ("a", "b")]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))  # `cat a.ts b.ts`: pts restart
    assert main([str(joined), "-o", str(tmp_path / "out.mkv"), *OPTIONS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"remaster: error: {joined}: timestamps go backwards at 0.958 s"), err
    assert "damaged" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.mkv").exists() and not (tmp_path / ".out.mkv.remaster").exists()
    # The remedy the message names puts the file on one timeline.
    fixed = tmp_path / "fixed.mkv"
    _ffmpeg("-i", str(joined), "-map", "0", "-c", "copy", str(fixed))
    assert probe(fixed).video.frame_count == 48


def test_picture_size_change_is_refused_before_work(tmp_path, capsys):
    parts = [_testsrc(tmp_path / "a.mkv", "64x48", 24, 1), _testsrc(tmp_path / "b.mkv", "96x64", 24, 1)]
    (tmp_path / "list.txt").write_text("".join(f"file '{p}'\n" for p in parts))
    joined = tmp_path / "joined.mkv"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(joined))
    assert main([str(joined), "-o", str(tmp_path / "out.mkv"), *OPTIONS]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"remaster: error: {joined}: the picture size changes at 1.000 s from 64x48 to 96x64; "
        "not supported: cut the file there and remaster each part"
    ), err
    assert not (tmp_path / "out.mkv").exists() and not (tmp_path / ".out.mkv.remaster").exists()


def test_shared_timestamps_from_an_ffmpeg_rate_change_keep_every_frame(tmp_path, capsys):
    # A 24 fps part and a 29.97 fps part joined by FFmpeg's concat filter with the timestamps passed
    # through: the encoder's 1/24 s clock makes some 29.97 fps frames share a millisecond. Players
    # show every frame; remaster used to call it "damaged". A keyframe every 12 frames: segments seek.
    spec = EpisodeSpec(width=128, height=96, seconds=1.0, rate=Fraction(24), marker=True, cover_image=False, audio=())
    episode = make_episode(tmp_path / "markers.mkv", spec)
    parts = "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=N/(30000/1001)/TB[b];[a][b]concat=n=2:v=1:a=0"
    source = tmp_path / "joined.mkv"
    _ffmpeg("-i", str(episode), "-i", str(episode), "-filter_complex", parts, "-fps_mode", "passthrough",
            "-c:v", "libx264", "-g", "12", "-crf", "12", "-pix_fmt", "yuv420p", str(source))  # fmt: skip
    stamps = frame_times(source)
    assert len(stamps) - len(set(stamps)) >= 3, "no shared timestamps: the test would prove nothing"
    output = tmp_path / "out.mkv"
    assert main([str(source), "-o", str(output), *OPTIONS, "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    notes = next(e for e in events if e["event"] == "done")["notes"]
    assert any("shared a timestamp or came out of order; kept" in note for note in notes), notes
    # Every frame, once, in order, each at its own time within a millisecond of the source's.
    with av.open(str(output)) as f:
        marks = [read_marker(frame.to_ndarray(format="rgb24"), spec.width, spec.height) for frame in f.decode(video=0)]
    assert marks == list(range(spec.frame_count)) * 2
    times = frame_times(output)
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert max(abs(a - b) for a, b in zip(times, stamps, strict=True)) <= 0.0021

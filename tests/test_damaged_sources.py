"""Damaged and irregular sources: frames lost from the middle are found before any work and named;
a timestamp reset is joined onto one timeline and shared timestamps are kept; a picture size change
is refused with one line saying where; never a traceback or a wrong "damaged"."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import FAST_MODEL
from videotools import frame_times, stream_payloads

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode, read_marker
from remaster.video.damage import find_holes
from remaster.video.normalise import probe_on_one_timeline
from remaster.video.probe import probe

pytestmark = pytest.mark.slow

# 3 s at 24 fps; a keyframe every half second, so that a 4 KiB hit in the middle takes out the
# rest of one cluster and the demuxer goes on at the next one.
SPEC = EpisodeSpec(
    width=64, height=48, seconds=3.0, rate=Fraction(24), gop_seconds=0.5, cover_image=False, ass_subtitles=False
)
OPTIONS = ["--segment-seconds", "0.5", "--codec", "x264", "--fields", "progressive", *FAST_MODEL]
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


# Each part of a joined recording: frame-number markers, and a 1 kHz beep from BEEP_AT s to
# BEEP_AT + 0.2 s of silence, so that where each part's audio lies against its video can be measured.
BEEP_AT = 0.5
PART = EpisodeSpec(
    width=128, height=64, seconds=1.0, rate=Fraction(25), gop_seconds=0.48, marker=True, cover_image=False, audio=()
)


def _joined_recording(folder: Path) -> Path:
    """Two MPEG-TS recordings joined with `cat`: the timestamps of the second start again."""
    video = make_episode(folder / "video.mkv", PART)
    silent = f"volume=0:enable='not(between(t,{BEEP_AT},{BEEP_AT + 0.2}))'"
    beep = f"sine=frequency=1000:duration={PART.seconds}:sample_rate=48000,{silent}"
    part = folder / "part.ts"
    _ffmpeg("-i", str(video), "-f", "lavfi", "-i", beep, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "mp2",
            str(part))  # fmt: skip
    joined = folder / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    return joined


def _beep_onsets(path: Path) -> list[float]:
    """Where each beep starts in the audio, in seconds on the file's clock: the first loud sample
    after more than 0.1 s without one (a 1 kHz tone has a loud sample every millisecond)."""
    loud: list[float] = []
    with av.open(str(path)) as f:
        for frame in f.decode(audio=0):
            # A tenth of full scale: the beep is at full scale, the silence is 0 but for MP2's ringing.
            samples = frame.to_ndarray()
            scale = np.iinfo(samples.dtype).max if samples.dtype.kind == "i" else 1.0
            hits = np.flatnonzero(np.abs(samples).max(axis=0) > 0.1 * scale)
            loud += [float(frame.pts * frame.time_base) + i / frame.sample_rate for i in hits]
    return [t for n, t in enumerate(loud) if n == 0 or t - loud[n - 1] > 0.1]


def test_timestamp_reset_is_joined_onto_one_timeline(tmp_path, capsys):
    joined = _joined_recording(tmp_path)
    output = tmp_path / "out.mkv"
    assert main([str(joined), "-o", str(output), *OPTIONS, "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    notes = next(e for e in events if e["event"] == "done")["notes"]
    assert f"{joined.name}: timestamp reset at 0.960 s: joined onto one timeline" in notes, notes
    # Every frame of both parts, once, in order, on one increasing timeline.
    with av.open(str(output)) as f:
        marks = [read_marker(frame.to_ndarray(format="rgb24"), PART.width, PART.height) for frame in f.decode(video=0)]
    assert marks == list(range(PART.frame_count)) * 2
    times = frame_times(output)
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    # Each part's beep lies as far after the part's first frame as it did in the part: within a frame.
    onsets = _beep_onsets(output)
    assert len(onsets) == 2, onsets
    second = times[PART.frame_count]
    assert abs((onsets[1] - second) - (onsets[0] - times[0])) <= 1 / 25, (onsets, times[0], second)
    assert abs(onsets[0] - times[0] - BEEP_AT) <= 1 / 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.ts", "out.mkv", "part.ts", "video.mkv"]


def test_a_joined_recording_refused_after_its_copy_leaves_no_work_folder(tmp_path, capsys):
    # The copy onto one timeline comes before the checks that need its probe (here the picture
    # size limit): a refusal after it must take the copy and the folder away again.
    joined = _joined_recording(tmp_path)
    assert main([str(joined), "-o", str(tmp_path / "out.mkv"), *OPTIONS, "--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(joined) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.ts", "part.ts", "video.mkv"]


def test_the_copy_on_one_timeline_is_made_once_and_remade_if_damaged(tmp_path):
    joined = _joined_recording(tmp_path)
    work = tmp_path / "work"
    media, notes = probe_on_one_timeline(joined, work, owned=True)
    copy = work / "timeline.mkv"
    assert media.path == copy and media.video.frame_count == 2 * PART.frame_count and notes
    made = copy.stat().st_mtime_ns
    assert probe_on_one_timeline(joined, work, owned=True)[0].path == copy
    assert copy.stat().st_mtime_ns == made  # reused
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit of a kill's or a disk's making
    copy.write_bytes(bytes(data))
    assert probe_on_one_timeline(joined, work, owned=True)[0].video.frame_count == 2 * PART.frame_count
    assert copy.read_bytes() != bytes(data)  # remade


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


@pytest.mark.parametrize("fields", ["progressive", "deinterlace"])  # the two ways a segment is decoded
def test_shared_timestamps_from_an_ffmpeg_rate_change_keep_every_frame(tmp_path, capsys, fields):
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
    assert main([str(source), "-o", str(output), *OPTIONS, "--fields", fields, "--json-progress"]) == 0
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


def _short_joined_recording(folder: Path) -> Path:
    """Two 12-frame MPEG-TS parts joined with `cat`: too few frames before the reset for the
    probe to call it one (MAX_REORDER_FRAMES), so their frames share timestamps instead."""
    part = folder / "short.ts"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.5", "-c:v", "libx264", "-g", "12",
            "-pix_fmt", "yuv420p", "-f", "mpegts", str(part))  # fmt: skip
    joined = folder / "short-joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    return joined


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_short_timestamp_reset_steps_by_the_frame_duration(tmp_path, suffix):
    # The second part's frames used to go one 1/90000 s tick apart, which Matroska's 1 ms clock
    # rounds onto one timestamp: 13 of 24 frames at 1942 ms, and exit 0.
    joined = _short_joined_recording(tmp_path)
    output = tmp_path / f"out{suffix}"
    assert main([str(joined), "-o", str(output), "--segment-seconds", "0.25", "--codec", "x264",
                 "--fields", "progressive"]) == 0  # fmt: skip
    times = frame_times(output)
    assert len(times) == 24
    steps = np.diff(times)
    assert steps.min() > 0.040 and steps.max() < 0.043, steps  # 1/24 s apart, within the 1 ms clock


def _stacked(path: Path, stamps: list[int]) -> Path:
    """An intra-only 1/24 s video whose frames carry `stamps` as their pts (dts 0, 1, 2...)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"g": "1"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        packets = []
        for n in range(len(stamps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), n * 8, np.uint8), format="rgb24")
            frame.pts = n
            packets += stream.encode(frame)
        packets += stream.encode(None)
        for n, packet in enumerate(packets):
            packet.dts, packet.pts = n, stamps[n]
            packet.time_base = Fraction(1, 24)
            out.mux(packet)
    return path


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_finished_files_timestamps_are_checked_strictly_increasing(tmp_path, suffix):
    from remaster.core.errors import RemasterError
    from remaster.video.pipeline import _verify_output

    video = _stacked(tmp_path / "video.mkv", list(range(24)))
    # As many frames, the same first and last time: only 13 of them stacked on one timestamp.
    finished = _stacked(tmp_path / f"finished{suffix}", [*range(11), *[23] * 13])
    _verify_output(video, video)
    with pytest.raises(RemasterError, match=r"not strictly increasing: .* the first at 0\.958 s"):
        _verify_output(finished, video)


def test_a_picture_size_change_after_a_cat_join_names_its_time_on_the_joined_timeline(tmp_path, capsys):
    # Two MPEG-TS recordings of different sizes joined with `cat`: the second's clock starts again,
    # so its first keyframe's own pts said "at 0.000 s"; it is half a second in, after the first part.
    parts = []
    for size in ("64x48", "96x64"):
        part = tmp_path / f"{size}.ts"
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration=0.5", "-c:v", "libx264", "-g", "12",
                "-pix_fmt", "yuv420p", "-f", "mpegts", str(part))  # fmt: skip
        parts.append(part.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    assert main([str(joined), "-o", str(tmp_path / "out.mkv"), *OPTIONS]) == 2
    assert capsys.readouterr().err.strip() == (
        f"remaster: error: {joined}: the picture size changes at 0.500 s from 64x48 to 96x64; "
        "not supported: cut the file there and remaster each part"
    )

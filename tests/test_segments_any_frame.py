"""Segments at any frame (issue 12, case 9): a source with a single keyframe is cut every
`--segment-seconds` like any other, each segment decodes exactly its own frames, and resuming
after a kill gives the frames of one uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_MODEL

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.video.decode import DecodeStats, decode_segment, decode_segments
from remaster.video.fields import CYCLE, filtered_segment, plan_fields, snap_to_cycles
from remaster.video.probe import VideoInfo, probe
from remaster.video.segments import Segment, plan_segments

# A keyframe interval far longer than the clip, no scene cuts (samples.py passes scenecut=0):
# one keyframe, as x264 gives with keyint=infinite.
ONE_KEYFRAME = {"gop_seconds": 1000.0, "cover_image": False}
# Lossless output, so that equal model results give equal decoded planes whatever the segments.
LOSSLESS = ["--codec", "x264", "--crf", "0", "--speed", "ultrafast", "--device", "cpu", *FAST_MODEL]


def _video(pts: list[int], keyframes: list[int]) -> VideoInfo:
    return VideoInfo(
        index=0, codec="h264", width=64, height=48, sar=Fraction(1), pix_fmt="yuv420p", bits=8, matrix="bt601",
        full_range=False, tagged={"colorspace": 0, "color_primaries": 0, "color_trc": 0, "color_range": 0},
        time_base=Fraction(1, 1000), rate=Fraction(24000, 1001), pts=tuple(pts), keyframe_pts=tuple(keyframes),
        has_pts=True, declared_frames=0, declared_end=None,
    )  # fmt: skip


def test_one_keyframe_is_cut_every_segment_seconds_within_one_frame():
    frame = Fraction(1001, 24)  # ms at 24000/1001, rounded to Matroska's millisecond clock
    pts = [round(i * frame) for i in range(1439)]  # a minute: 59.98 s
    video = _video(pts, keyframes=[0])
    segments = plan_segments(video, 2.5, video.pts)
    assert [p for s in segments for p in s.pts] == pts  # every frame once, in order
    assert len(segments) == 24
    for k, segment in enumerate(segments):
        assert abs(segment.first_pts - 2500 * k) <= frame  # starts within one frame of its time
    for segment in segments[:-1]:
        assert abs(segment.frame_count * frame - 2500) <= frame  # lasts --segment-seconds within one frame
    # A gap longer than a segment (a VFR hole) is no empty segment.
    gapped = _video([0, 40, 80, 9000, 9040], keyframes=[0])
    assert [s.pts for s in plan_segments(gapped, 2.0, gapped.pts)] == [(0, 40, 80), (9000, 9040)]


def _all_frames(path: Path) -> dict[int, np.ndarray]:
    with av.open(str(path)) as container:
        return {f.pts: f.to_ndarray(format="yuv420p") for f in container.decode(video=0)}


def test_a_segment_far_after_the_only_keyframe_decodes_its_own_frames(tmp_path):
    # MPEG-TS: a seek lands on whatever packet has the time asked for, not on a keyframe, and
    # decoding from there gives nothing; the decoder must start from the keyframe.
    source = make_episode(
        tmp_path / "capture.ts", EpisodeSpec(width=64, height=48, seconds=5.0, container="ts", audio=(), **ONE_KEYFRAME)
    )
    video = probe(source).video
    assert len(video.keyframe_pts) == 1
    whole = _all_frames(source)
    segments = plan_segments(video, 1.0, video.pts)
    assert len(segments) == 5
    for segment in segments:
        stats = DecodeStats()
        got = list(decode_segment(source, video, segment, stats))
        assert [p.pts for p in got] == list(segment.pts), segment.index
        for planes in got:
            assert np.array_equal(planes.y, whole[planes.pts][: video.height]), (segment.index, planes.pts)
    # In one pass, and in two with a gap (segment 2 left out): a seek in MPEG-TS, then the same frames.
    for chosen in (segments, segments[:2] + segments[3:]):
        opens = 0
        for (segment, stats, frames), wanted in zip(decode_segments(source, video, chosen), chosen, strict=True):
            got = list(frames)  # read before the next segment is asked for
            assert segment == wanted and stats.frames == len(got) and [p.pts for p in got] == list(segment.pts)
            assert all(np.array_equal(p.y, whole[p.pts][: video.height]) for p in got), segment.index
            opens += stats.opens
        assert opens == (1 if chosen is segments else 2)


@pytest.mark.parametrize("mode", ["deinterlace", "ivtc"])
def test_field_filters_give_one_run_s_frames_from_segments_cut_between_keyframes(tmp_path, mode):
    scan = "interlaced" if mode == "deinterlace" else "telecined"
    spec = EpisodeSpec(width=64, height=48, seconds=4.0, container="ts", scan=scan, audio=(), **ONE_KEYFRAME)
    source = make_episode(tmp_path / f"{scan}.ts", spec)
    video = probe(source).video
    assert len(video.keyframe_pts) == 1
    plan = plan_fields(mode, None, video, field_rate=False)
    frames = video.pts
    if mode == "ivtc":
        frames = video.pts[snap_to_cycles(frames, video) :]
    cycle = CYCLE if mode == "ivtc" else None
    segments = plan_segments(video, 0.7, frames, cycle)
    assert len(segments) >= 5

    def planes(segment: Segment) -> list[tuple[int, bytes]]:
        return [
            (p.pts, p.y.tobytes() + p.u.tobytes())
            for p in filtered_segment(source, video, segment, plan, DecodeStats())
        ]

    one_run = planes(Segment(0, frames))
    assert len(one_run) == plan.output_count(len(frames))
    pieces = [item for segment in segments for item in planes(segment)]
    assert len(pieces) == len(one_run)
    assert [pts for pts, _ in pieces] == [pts for pts, _ in one_run]
    assert all(a == b for (_, a), (_, b) in zip(pieces, one_run, strict=True))


# The end-to-end runs: a real episode through the model and the encoder.


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    source = make_episode(
        tmp_path_factory.mktemp("src") / "one-keyframe.mkv",
        EpisodeSpec(width=64, height=48, seconds=2.0, **ONE_KEYFRAME),
    )
    assert len(probe(source).video.keyframe_pts) == 1
    return source


@pytest.fixture(scope="module")
def one_segment(episode, tmp_path_factory) -> tuple[list[np.ndarray], Path]:
    """The whole episode as one segment; its work folder is kept, as an older run's would be."""
    folder = tmp_path_factory.mktemp("one")
    out, work = folder / "one.mkv", folder / "work"
    args = [str(episode), "-o", str(out), *LOSSLESS, "--segment-seconds", "100", "--workdir", str(work)]
    assert main([*args, "--keep-workdir", "--quiet"]) == 0
    assert _manifest_keys(work) == ["0+48"]
    return _decoded(out), work


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray() for f in container.decode(video=0)]  # the planes, without row padding


def _manifest_keys(workdir: Path) -> list[str]:
    manifest = workdir / "manifest.json"
    return [r["key"] for r in json.loads(manifest.read_text())["segments"]] if manifest.exists() else []


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_one_keyframe_episode_in_several_segments_gives_one_segment_s_frames(episode, one_segment, tmp_path):
    out, work = tmp_path / "cut.mkv", tmp_path / "work"
    args = [str(episode), "-o", str(out), *LOSSLESS, "--segment-seconds", "0.5", "--workdir", str(work)]
    assert main([*args, "--keep-workdir", "--quiet"]) == 0
    assert _manifest_keys(work) == ["0+12", "501+12", "1001+12", "1502+12"]
    reference, _ = one_segment
    frames = _decoded(out)
    assert len(frames) == len(reference) == 48
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))


@pytest.mark.slow
def test_kill_then_resume_recomputes_only_unfinished_segments(episode, one_segment, tmp_path):
    reference, old_work = one_segment
    out = tmp_path / "resumed.mkv"
    # The work folder of a run planned with other segments: its checkpoint is not reused.
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(out), *LOSSLESS]
    command += ["--segment-seconds", "0.5", "--workdir", str(old_work), "--json-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    start = None
    for line in proc.stdout:
        event = json.loads(line)
        start = event if event["event"] == "start" else start
        if event["event"] == "segment" and event["state"] == "done":
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert start["segments"] == 4 and start["reused"] == []
    committed = [key for key in _manifest_keys(old_work) if key != "0+48"]
    assert 1 <= len(committed) < 4

    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    events = _events(result.stdout)
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    assert len(start["reused"]) == len(committed)
    assert sorted(done["reused_segments"] + done["computed_segments"]) == [0, 1, 2, 3]
    assert len(done["computed_segments"]) == 4 - len(committed)
    assert done["computed_frames"] == 12 * len(done["computed_segments"])
    frames = _decoded(out)
    assert len(frames) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))



def _done_event(capsys) -> dict:
    return next(e for e in _events(capsys.readouterr().out) if e["event"] == "done")


@pytest.mark.slow
def test_consecutive_segments_are_decoded_in_one_pass(episode, tmp_path, capsys):
    # The run's own counts of the video packets its decoder read and of the times it opened the
    # source to decode from a keyframe. With one keyframe, decoding each segment from the start
    # would read 12 + 24 + 36 + 48 packets; one pass over the 4 segments reads each packet once.
    # Progressive named: idet takes this little test card for interlaced, and the deinterlacing
    # path still decodes each segment on its own.
    frame_count = probe(episode).video.frame_count
    out, work = tmp_path / "fresh.mkv", tmp_path / "work"
    args = [str(episode), *LOSSLESS, "--fields", "progressive", "--segment-seconds", "0.5", "--workdir", str(work)]
    assert main([*args, "-o", str(out), "--json-progress"]) == 0
    done = _done_event(capsys)
    assert done["computed_segments"] == [0, 1, 2, 3]
    assert (done["decoder_opens"], done["decoded_packets"]) == (1, frame_count)

    # An earlier run finished only the second segment (a run of --start 0.5 --end 1.0 plans it the
    # same: key 501+12): resuming decodes segment 0, then seeks once more (here to the start) for 2 and 3.
    middle = ["-o", str(tmp_path / "middle.mkv"), "--start", "0.5", "--end", "1.0", "--keep-workdir", "--quiet"]
    assert main([*args, *middle]) == 0
    assert _manifest_keys(work) == ["501+12"]
    resumed = tmp_path / "resumed.mkv"
    assert main([*args, "-o", str(resumed), "--json-progress"]) == 0
    done = _done_event(capsys)
    assert done["reused_segments"] == [1] and done["computed_segments"] == [0, 2, 3]
    assert done["decoder_opens"] == 2
    # The first pass reads segment 0 and what the decoder holds ahead of its output (its frame
    # threads); the second reads the whole file again, as there is no keyframe to seek to.
    assert frame_count + 12 <= done["decoded_packets"] < 2 * frame_count
    fresh_frames = _decoded(out)
    assert len(fresh_frames) == frame_count
    assert all(np.array_equal(a, b) for a, b in zip(_decoded(resumed), fresh_frames, strict=True))

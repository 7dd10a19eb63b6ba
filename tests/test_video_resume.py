"""A run killed at any moment costs at most its segment in progress, and never leaves a file behind;
bad or damaged input is refused with one line, and nothing the user owns is touched."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_MODEL
from videotools import interruptible_remaster

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode

pytestmark = pytest.mark.slow

SPEC = EpisodeSpec(width=64, height=48, seconds=3.0, gop_seconds=0.25, cover_image=False)
OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264", *FAST_MODEL]


def _command(source: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "remaster", str(source), "-o", str(output), *OPTIONS, *extra]


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def _manifest_segments(workdir: Path) -> set[str]:
    manifest = workdir / "manifest.json"
    if not manifest.exists():
        return set()
    return {record["key"] for record in json.loads(manifest.read_text())["segments"]}


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    return make_episode(tmp_path_factory.mktemp("src") / "episode.mkv", SPEC)


@pytest.fixture(scope="module")
def reference(episode, tmp_path_factory) -> list[np.ndarray]:
    out = tmp_path_factory.mktemp("ref") / "ref.mkv"
    assert main([str(episode), "-o", str(out), *OPTIONS, "--quiet"]) == 0
    return _decoded(out)


def test_sigkill_at_random_moments_then_resume(episode, reference, tmp_path):
    output = tmp_path / "out.mkv"
    workdir = tmp_path / ".out.mkv.remaster"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(_command(episode, output, "--json-progress"), stdout=subprocess.PIPE, text=True)
        # Kill at a random point in the first half of what is left to do: mid-segment or
        # between segments, never after the end.
        target = None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] != "progress":
                continue
            if target is None:
                left = event["frames_total"] - event["frames_done"]
                target = event["frames_done"] + rng.randint(0, left // 2)
            if event["frames_done"] >= target:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += proc.returncode == -signal.SIGKILL
        assert not output.exists()  # a killed run never leaves a file at the output path
    assert kills >= 3

    finished = _manifest_segments(workdir)
    assert finished, "the killed runs should have finished some segments"
    result = subprocess.run(_command(episode, output, "--json-progress"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    events = _events(result.stdout)
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    computed = {e["index"] for e in events if e["event"] == "segment" and e["state"] == "done"}
    assert len(start["reused"]) == len(finished)
    assert set(done["reused_segments"]) == set(start["reused"])
    assert computed == set(done["computed_segments"])
    assert computed.isdisjoint(start["reused"])
    assert len(computed) + len(start["reused"]) == start["segments"]
    frames = _decoded(output)
    assert len(frames) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))
    assert not workdir.exists()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(episode, tmp_path):
    output = tmp_path / "out.mkv"
    command = interruptible_remaster(str(episode), "-o", str(output), *OPTIONS, "--json-progress")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if '"segment"' in line and '"done"' in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    assert not output.exists()
    workdir = tmp_path / ".out.mkv.remaster"
    assert _manifest_segments(workdir)
    assert not list(workdir.glob("*.partial"))  # the segment in progress was removed


def test_ctrl_c_before_any_segment_is_finished_says_so(episode, tmp_path):
    output = tmp_path / "out.mkv"
    # One segment of 72 frames: the model takes seconds over it, so Ctrl-C at its first frame comes
    # long before it is finished.
    command = interruptible_remaster(str(episode), "-o", str(output), *OPTIONS, "--json-progress")
    command += ["--segment-seconds", "10"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "progress":
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    events = seen + _events(out)
    assert next(e for e in events if e["event"] == "start")["segments"] == 1
    assert not any(e["event"] == "segment" and e["state"] == "done" for e in events)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["remaster: error: interrupted; nothing was finished"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, and no work folder


def test_a_different_input_at_the_same_path_discards_the_killed_runs_segments(episode, tmp_path):
    """A killed run, then another file put where its input was (a re-release): same size and time
    base, so only the input's own identity tells them apart. None of the first file's segments may
    end up in the second file's output, and the run says why it starts over."""
    source, output = tmp_path / "episode.mkv", tmp_path / "out.mkv"
    source.write_bytes(episode.read_bytes())
    proc = subprocess.Popen(_command(source, output, "--json-progress"), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if '"segment"' in line and '"done"' in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    workdir = tmp_path / ".out.mkv.remaster"
    killed = _manifest_segments(workdir)
    assert killed, "the killed run should have finished a segment"
    other = make_episode(tmp_path / "other.mkv", EpisodeSpec(**{**SPEC.__dict__, "seconds": 2.0, "motion": "slow_pan"}))
    os.replace(other, source)
    assert _decoded(source)[0].tobytes() != _decoded(episode)[0].tobytes()
    result = subprocess.run(_command(source, output, "--json-progress"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    events = _events(result.stdout)
    notes = [e["message"] for e in events if "message" in e]
    assert f"earlier work in {workdir} discarded: the input file changed" in notes, notes
    done = next(e for e in events if e["event"] == "done")
    assert done["reused_segments"] == [] and len(done["computed_segments"]) == next(
        e for e in events if e["event"] == "start"
    )["segments"]
    alone = tmp_path / "alone.mkv"
    assert main([str(source), "-o", str(alone), *OPTIONS, "--quiet"]) == 0
    frames, expected = _decoded(output), _decoded(alone)
    assert len(frames) == len(expected) < len(_decoded(episode))
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_changed_settings_or_corrupt_segments_are_redone(episode, tmp_path, capsys):
    output = tmp_path / "out.mkv"
    workdir = tmp_path / "work"
    base = [str(episode), "-o", str(output), *OPTIONS, "--workdir", str(workdir), "--keep-workdir", "--json-progress"]
    assert main(base) == 0
    capsys.readouterr()
    segments = sorted(workdir.glob("segment-*.mkv"), key=lambda p: int(p.name.split("-")[1]))  # by first pts
    # Damage one finished segment: cut it short. Only that one is recomputed.
    segments[2].write_bytes(segments[2].read_bytes()[:500])
    assert main([*base, "--overwrite"]) == 0
    events = _events(capsys.readouterr().out)
    done = next(e for e in events if e["event"] == "done")
    assert done["computed_segments"] == [2]
    # A different quality invalidates everything, and says why.
    assert main([*base, "--overwrite", "--crf", "30"]) == 0
    events = _events(capsys.readouterr().out)
    assert any("settings changed (encoder)" in e.get("message", "") for e in events)
    done = next(e for e in events if e["event"] == "done")
    assert done["reused_segments"] == [] and len(done["computed_segments"]) == len(segments)


def _bad_inputs(folder: Path, episode: Path) -> dict[str, Path]:
    files = {}
    files["empty"] = folder / "empty.mkv"
    files["empty"].write_bytes(b"")
    files["not media"] = folder / "notes.mkv"
    files["not media"].write_text("these are my notes, not a video\n" * 50)
    files["truncated header"] = folder / "header.mkv"
    files["truncated header"].write_bytes(episode.read_bytes()[:60])
    mp4 = make_episode(folder / "full.mp4", EpisodeSpec(width=64, height=48, seconds=1.0, container="mp4"))
    data = mp4.read_bytes()
    moov = data.rfind(b"moov") - 4  # without faststart, the index is at the end
    assert moov > data.find(b"mdat")
    files["mp4 without index"] = folder / "noindex.mp4"
    files["mp4 without index"].write_bytes(data[:moov])
    audio_only = folder / "audio.mka"
    with av.open(str(episode)) as src, av.open(str(audio_only), "w") as dst:
        stream_in = src.streams.audio[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for packet in src.demux(stream_in):
            if packet.size:
                packet.stream = stream_out
                dst.mux(packet)
    files["audio only"] = audio_only
    files["missing"] = folder / "missing.mkv"
    return files


def test_bad_input_gets_one_line_exit_2_and_nothing_written(episode, tmp_path, capsys):
    for problem, path in _bad_inputs(tmp_path, episode).items():
        output = tmp_path / f"{path.stem}.out.mkv"
        before = path.read_bytes() if path.exists() else None
        code = main([str(path), "-o", str(output)])
        err = capsys.readouterr().err.strip()
        assert code == 2, problem
        assert err.count("\n") == 0 and str(path) in err and err.startswith("remaster: error:"), (problem, err)
        assert not output.exists() and not (tmp_path / f".{output.name}.remaster").exists(), problem
        assert (path.read_bytes() if path.exists() else None) == before
    assert "no video stream (has audio)" in _one_error(tmp_path / "audio.mka", tmp_path, capsys)
    assert "empty file" in _one_error(tmp_path / "empty.mkv", tmp_path, capsys)


def _one_error(path: Path, folder: Path, capsys) -> str:
    main([str(path), "-o", str(folder / "x.mkv")])
    return capsys.readouterr().err


def test_truncated_file_is_reported_with_numbers(tmp_path, capsys):
    # Without the font attachment, which is most of this little file, so that the cut falls in the frames.
    episode = make_episode(tmp_path / "plain.mkv", EpisodeSpec(**{**SPEC.__dict__, "ass_subtitles": False}))
    damaged = tmp_path / "cut.mkv"
    damaged.write_bytes(episode.read_bytes()[: episode.stat().st_size * 6 // 10])
    output = tmp_path / "cut.out.mkv"
    assert main([str(damaged), "-o", str(output), *OPTIONS]) == 2
    err = capsys.readouterr().err
    assert "should run to 3.0" in err and "--allow-damaged" in err, err
    assert not output.exists()
    assert main([str(damaged), "-o", str(output), *OPTIONS, "--allow-damaged", "--quiet"]) == 0
    with av.open(str(output)) as f:
        assert 0 < sum(1 for p in f.demux(video=0) if p.size) < SPEC.frame_count


def test_corrupt_middle_is_reported_with_numbers(episode, tmp_path, capsys):
    data = bytearray(episode.read_bytes())
    with av.open(str(episode)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        target = packets[len(packets) // 2]
        offset, size = target.pos, target.size
    # Scramble one frame's data in place (not its container framing): the decoder rejects it.
    rng = np.random.default_rng(3)
    data[offset + 8 : offset + size] = rng.integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    damaged = tmp_path / "corrupt.mkv"
    damaged.write_bytes(bytes(data))
    output = tmp_path / "corrupt.out.mkv"
    assert main([str(damaged), "-o", str(output), *OPTIONS, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "decoded 2 of its 6 frames" in err, err  # the broken frame and those that refer to it
    assert not output.exists()
    assert main([str(damaged), "-o", str(output), *OPTIONS, "--quiet", "--allow-damaged"]) == 0
    with av.open(str(output)) as f:
        assert sum(1 for p in f.demux(video=0) if p.size) == SPEC.frame_count - 4


def test_existing_output_is_never_overwritten_and_input_never_written(episode, tmp_path, capsys):
    output = tmp_path / "mine.mkv"
    output.write_bytes(b"my own file")
    digest = hashlib.sha256(episode.read_bytes()).hexdigest()
    stat = os.stat(episode)
    assert main([str(episode), "-o", str(output), *OPTIONS]) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"my own file"
    assert main([str(episode), "-o", str(episode), "--overwrite", *OPTIONS]) == 2
    assert "is the input" in capsys.readouterr().err
    assert hashlib.sha256(episode.read_bytes()).hexdigest() == digest
    assert os.stat(episode).st_mtime_ns == stat.st_mtime_ns

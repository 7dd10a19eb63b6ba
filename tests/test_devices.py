"""Several devices in one machine (`--device cpu,cpu` stands in for `cuda:0,cuda:1`): a worker
process per device, the same frames as one device, a dead worker reported and resumed from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode

pytestmark = pytest.mark.slow

OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264"]


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("devices")
    return make_episode(folder / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.5, gop_seconds=0.25))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="yuv420p") for frame in f.decode(video=0)]


def test_two_device_workers_give_the_one_device_frames(episode, tmp_path, capsys):
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    assert main([str(episode), "-o", str(one), *OPTIONS, "--device", "cpu", "--quiet"]) == 0
    assert main([str(episode), "-o", str(two), *OPTIONS, "--device", "cpu,cpu", "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert "6 segments computed by 2 workers on cpu, cpu" in notes, notes
    a, b = _frames(one), _frames(two)
    assert len(a) == len(b) == 36 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with av.open(str(two)) as f:
        assert len(f.streams.audio) == 2 and len(f.streams.subtitles) == 2


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cpu,cuda:0", "--device cpu,cuda:0: want devices of one kind, such as cuda:0,cuda:1"),
        ("cpu,", "--device cpu,: want devices of one kind"),
        ("cuda:0,cuda:1", "no CUDA GPU is available to PyTorch here"),
    ],
)
def test_a_device_list_that_cannot_run_is_one_line_before_work(episode, tmp_path, capsys, device, message):
    if device.startswith("cuda") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    output = tmp_path / "out.mkv"
    assert main([str(episode), "-o", str(output), *OPTIONS, "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not output.exists() and not (tmp_path / ".out.mkv.remaster").exists()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def test_a_killed_worker_fails_the_episode_in_one_line_and_the_rerun_resumes(episode, tmp_path):
    output = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), *OPTIONS, "--device", "cpu,cpu"]
    run = subprocess.Popen([*command, "--json-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:  # the first segment back: the workers are up and computing
        if '"state": "done"' in line:
            break
    workers = [pid for pid in _children(run.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert workers, "no worker process found"
    os.kill(workers[-1], signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("remaster: error:")]
    assert len(lines) == 1 and "the worker on cpu died (exit code -9)" in lines[0], err
    assert not output.exists()
    # The segments that came back are kept; the rerun computes only the rest.
    rerun = subprocess.run([*command, "--json-progress"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    start = next(json.loads(line) for line in rerun.stdout.splitlines() if '"event": "start"' in line)
    assert 1 <= len(start["reused"]) < start["segments"]
    assert len(_frames(output)) == 36

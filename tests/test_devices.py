"""Several devices or pipelines in one machine (`--device cpu,cpu` stands in for `cuda:0,cuda:1`,
`cpu*2` for `cuda:0*2`): a worker process per pipeline, the same frames and streams as one worker,
a worker killed mid-episode costing only its segment."""

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
from conftest import FAST_MODEL

from remaster.cli import main
from remaster.core.errors import UsageError
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.scaleout.devices import MAX_PIPELINES, DeviceSpread, auto_pipelines, parse_devices

GIB = 1 << 30

OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264", *FAST_MODEL]


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("devices")
    return make_episode(folder / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.5, gop_seconds=0.25))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="yuv420p") for frame in f.decode(video=0)]


def test_device_lists_and_pipelines_per_device():
    for one in ("auto", "cpu", "cuda:0", "cpu*1", "vulkan:1"):
        assert parse_devices(one) is None
    assert parse_devices("cpu*2") == DeviceSpread(("cpu", "cpu"))
    assert parse_devices("cuda:0*2,cuda:1") == DeviceSpread(("cuda:0", "cuda:0", "cuda:1"))
    assert parse_devices("cuda:0*auto") == DeviceSpread(("cuda:0",), auto=True)
    for bad in ("cpu*0", "cpu*x", "cpu*", "cpu*2,cuda:0", "auto*2"):
        with pytest.raises(UsageError, match=f"--device {bad.replace('*', '[*]')}: want"):
            parse_devices(bad)


def test_auto_pipelines_follow_the_encoders_share_bounded_by_memory():
    # One pipeline on a GPU: the encoder busy all the time, the model a third of it: three feed it.
    assert auto_pipelines({"decode": 20, "model": 34, "encode": 99}, 4 * GIB, 70 * GIB) == 3
    # The model the busiest (a CPU, a slow model): one pipeline is enough.
    assert auto_pipelines({"decode": 5, "model": 97, "encode": 40}, 4 * GIB, 70 * GIB) == 1
    # As many as fit beside the first, and never past MAX_PIPELINES.
    assert auto_pipelines({"model": 10, "encode": 100}, 30 * GIB, 40 * GIB) == 2
    assert auto_pipelines({"model": 1, "encode": 100}, 1 * GIB, 70 * GIB) == MAX_PIPELINES
    assert auto_pipelines({}, 0, 0) == 1  # nothing measured: one


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu,cpu", "cpu*2"])
def test_two_workers_give_the_one_worker_frames_and_streams(episode, tmp_path, capsys, device):
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    assert main([str(episode), "-o", str(one), *OPTIONS, "--device", "cpu", "--quiet"]) == 0
    assert main([str(episode), "-o", str(two), *OPTIONS, "--device", device, "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert "6 segments computed by 2 workers on cpu, cpu" in notes, notes
    a, b = _frames(one), _frames(two)
    assert len(a) == len(b) == 36 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with av.open(str(one)) as f, av.open(str(two)) as g:
        assert [s.type for s in f.streams] == [s.type for s in g.streams]
        assert len(g.streams.audio) == 2 and len(g.streams.subtitles) == 2


@pytest.mark.slow
def test_auto_pipelines_on_a_cpu_measure_the_first_segment_and_keep_one(episode, tmp_path, capsys):
    output = tmp_path / "auto.mkv"
    assert main([str(episode), "-o", str(output), *OPTIONS, "--device", "cpu*auto", "--json-progress"]) == 0
    notes = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines() if '"note"' in line]
    # On a CPU the model is the busiest stage: the measurement keeps one pipeline.
    assert any(note.startswith("cpu*auto: 1 pipeline (one pipeline's stages busy: decode") for note in notes), notes
    assert len(_frames(output)) == 36


@pytest.mark.slow
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cpu,cuda:0", "--device cpu,cuda:0: want devices of one kind, such as cuda:0,cuda:1 or cuda:0*2"),
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


@pytest.mark.slow
def test_a_killed_worker_costs_only_its_segment(episode, tmp_path):
    output = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), *OPTIONS, "--device", "cpu*2"]
    run = subprocess.Popen([*command, "--json-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:  # the first segment back: the workers are up and computing
        if '"state": "done"' in line:
            break
    workers = [pid for pid in _children(run.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2, "want two worker processes"
    os.kill(workers[-1], signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    notes = [json.loads(line)["message"] for line in out.splitlines() if '"note"' in line]
    died = [note for note in notes if note.startswith("the worker on cpu died (exit code -9)")]
    assert len(died) == 1, notes  # said once; its segment (if it had one) went to the other worker
    assert "segments computed by 1 worker" in notes[-1] or "by 2 workers" in notes[-1], notes
    assert len(_frames(output)) == 36 and not (tmp_path / ".out.mkv.remaster").exists()


@pytest.mark.slow
def test_when_every_worker_dies_the_episode_fails_in_one_line_and_the_rerun_resumes(episode, tmp_path):
    output = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "remaster", str(episode), "-o", str(output), *OPTIONS, "--device", "cpu,cpu"]
    run = subprocess.Popen([*command, "--json-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:
        if '"state": "done"' in line:
            break
    for pid in _children(run.pid):
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("remaster: error:")]
    assert len(lines) == 1 and "the worker on cpu died (exit code -9)" in lines[0], err
    assert not output.exists()
    rerun = subprocess.run([*command, "--json-progress"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    start = next(json.loads(line) for line in rerun.stdout.splitlines() if '"event": "start"' in line)
    assert 1 <= len(start["reused"]) < start["segments"]
    assert len(_frames(output)) == 36

"""Ray scale-out: one episode's segments as Ray tasks on a local Ray instance (CPU)."""

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
from videotools import interruptible_remaster

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.video import probe

ray = pytest.importorskip("ray")  # installed with the test extra; `pip install 'remaster[cluster]'` for users
pytestmark = pytest.mark.slow

OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264"]


SCAN_LOG = "REMASTER_TEST_SCAN_LOG"


def _log_scans() -> None:
    """Run in every Ray worker as it starts (and in this process by the test): each packet scan
    of a file (probe.py's one pass over every packet) is written to $REMASTER_TEST_SCAN_LOG."""
    import os

    from remaster.video import probe

    scan = probe._scan_packets

    def logged(container, video, path):
        with open(os.environ[SCAN_LOG], "a") as log:
            log.write(f"{os.getpid()} {path}\n")
        return scan(container, video, path)

    probe._scan_packets = logged


@pytest.fixture(scope="module")
def scan_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scans") / "scans.log"


@pytest.fixture(scope="module")
def local_ray(scan_log):
    # The hook goes by value: the workers cannot import this test module.
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    runtime_env = {"worker_process_setup_hook": _log_scans, "env_vars": {SCAN_LOG: str(scan_log)}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    yield
    ray.shutdown()


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="yuv420p") for frame in f.decode(video=0)]


@pytest.mark.parametrize("shared", [False, True])
def test_segments_spread_over_ray_tasks_give_the_local_result(
    tmp_path, local_ray, scan_log, monkeypatch, capsys, shared
):
    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.5, gop_seconds=0.25))
    local, spread = tmp_path / "local.mkv", tmp_path / "ray.mkv"
    assert main([str(source), "-o", str(local), *OPTIONS, "--quiet"]) == 0
    extra = ["--ray-shared-workdir"] if shared else []
    monkeypatch.setenv(SCAN_LOG, str(scan_log))
    monkeypatch.setattr(probe, "_scan_packets", probe._scan_packets)  # put back after _log_scans
    _log_scans()
    assert main([str(source), "-o", str(spread), *OPTIONS, "--ray", "local", *extra, "--json-progress"]) == 0
    # The driver scans the input once, to plan; the tasks run the driver's plan and scan it never.
    scans = [line.split() for line in scan_log.read_text().splitlines()]
    scan_log.unlink()
    assert [pid for pid, path in scans if path == str(source)] == [str(os.getpid())], scans
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    note = next(e["message"] for e in events if e["event"] == "note" and "Ray workers" in e["message"])
    segments, workers = (int(word) for word in note.split() if word.isdigit())
    assert segments == start["segments"] >= 4 and workers >= 2, note
    a, b = _frames(local), _frames(spread)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with av.open(str(spread)) as f:
        assert len(f.streams.audio) == 2 and len(f.streams.subtitles) == 2


def test_the_driver_fixes_one_device_and_precision_for_every_task():
    from remaster.engines.device import cpu_bf16_pays
    from remaster.engines.settings import EngineSettings
    from remaster.scaleout.ray_cluster import task_device
    from remaster.video.plan import resolve_engine

    def engine(model: str, device: str = "auto", precision: str = "auto", on_gpu: bool = False) -> tuple[str, str]:
        resolved = resolve_engine(EngineSettings(device, precision), model, task_device(device, on_gpu))
        return resolved.device, resolved.precision

    # 2x-conservative is measured fit for bf16 (models/fidelity.py), 2x-pro-conservative is not.
    cpu_auto = "bf16" if cpu_bf16_pays() else "fp32"
    assert engine("2x-conservative") == ("cpu", cpu_auto)
    assert engine("2x-pro-conservative") == ("cpu", "fp32")
    assert engine("2x-conservative", on_gpu=True) == ("cuda", "fp16")
    # Ray gives each GPU task its own visible device: a driver's cuda:1 is the task's cuda.
    assert engine("2x-conservative", device="cuda:1", on_gpu=True) == ("cuda", "fp16")
    # An explicit choice is the user's; a device named cpu keeps the CPU's rule even with GPUs.
    assert engine("2x-conservative", precision="fp32", on_gpu=True) == ("cuda", "fp32")
    assert engine("2x-conservative", device="cpu", on_gpu=True) == ("cpu", cpu_auto)


def test_ctrl_c_during_a_ray_job_is_one_line_that_says_what_is_kept(tmp_path):
    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=3, gop_seconds=0.25))
    output = tmp_path / "out.mkv"
    command = interruptible_remaster(str(source), "-o", str(output), *OPTIONS, "--ray", "local", "--json-progress")
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:  # the first segment back from a task: the job is under way
        if '"state": "done"' in line:
            break
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("remaster: ")]
    assert len(lines) == 1 and "interrupted; " in lines[0] and "run the same command again" in lines[0], err
    assert "Traceback" not in err and not output.exists()

"""Ray scale-out: one episode's segments as Ray tasks on a local Ray instance (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode

ray = pytest.importorskip("ray")  # installed with the test extra; `pip install 'remaster[cluster]'` for users
pytestmark = pytest.mark.slow

OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="yuv420p") for frame in f.decode(video=0)]


@pytest.mark.parametrize("shared", [False, True])
def test_segments_spread_over_ray_tasks_give_the_local_result(tmp_path, local_ray, capsys, shared):
    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.5, gop_seconds=0.25))
    local, spread = tmp_path / "local.mkv", tmp_path / "ray.mkv"
    assert main([str(source), "-o", str(local), *OPTIONS, "--quiet"]) == 0
    extra = ["--ray-shared-workdir"] if shared else []
    assert main([str(source), "-o", str(spread), *OPTIONS, "--ray", "local", *extra, "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    note = next(e["message"] for e in events if e["event"] == "note" and "Ray workers" in e["message"])
    segments, workers = (int(word) for word in note.split() if word.isdigit())
    assert segments == start["segments"] >= 4 and workers >= 2, note
    a, b = _frames(local), _frames(spread)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with av.open(str(spread)) as f:
        assert len(f.streams.audio) == 2 and len(f.streams.subtitles) == 2


def test_the_driver_fixes_one_precision_for_every_task():
    from remaster.cluster import one_precision
    from remaster.engine.device import cpu_has_bf16
    from remaster.engine.upscaler import EngineSettings
    from remaster.presets import get_preset
    from remaster.video.encode import EncoderSettings
    from remaster.video.pipeline import VideoSettings

    def settings(model: str, device: str = "auto", precision: str = "auto") -> VideoSettings:
        preset = get_preset("2x-conservative")
        return VideoSettings(preset, model, EngineSettings(device, precision), EncoderSettings())

    cpu_auto = "bf16" if cpu_has_bf16() else "fp32"
    assert one_precision(settings("2x-conservative"), on_gpu=False).engine.precision == cpu_auto
    assert one_precision(settings("2x-pro-conservative"), on_gpu=False).engine.precision == "fp32"
    assert one_precision(settings("2x-conservative"), on_gpu=True).engine.precision == "fp16"
    # An explicit choice is the user's; a device named cpu keeps the CPU's rule even with GPUs.
    assert one_precision(settings("2x-conservative", precision="fp32"), on_gpu=True).engine.precision == "fp32"
    assert one_precision(settings("2x-conservative", device="cpu"), on_gpu=True).engine.precision == cpu_auto

"""The encoder fits the machine: sized to the cores this process may use (its CPU affinity), not the
machine's (x265 gets a thread pool of that many workers, counted as real threads of a real encoder
in a child pinned to one core); NVENC refused in one line where there is no NVIDIA GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.video.encode import EncoderSettings, encoder_threads, threaded_options

# Opens the writer as the pipeline does, encodes a frame (x265 starts its threads on open and on
# the first frame) and prints how many threads the process gained.
CHILD = """
import os, sys
from fractions import Fraction
from pathlib import Path
import numpy as np
os.sched_setaffinity(0, {0})
from remaster.video.encode import EncoderSettings, OutputColour, SegmentWriter, VideoFormat
before = len(os.listdir("/proc/self/task"))
video = VideoFormat(320, 240, Fraction(1), Fraction(1, 25), Fraction(25))
writer = SegmentWriter(Path(sys.argv[1]), EncoderSettings("x265").resolved(), video, OutputColour("bt709", 1, 1, 1))
y = np.zeros((240, 320), np.uint16)
c = np.full((120, 160), 512, np.uint16)
writer.write(y, c, c, 0)
print(len(os.listdir("/proc/self/task")) - before)
writer.close()
"""


def test_x265_runs_a_pool_of_one_thread_a_core_of_the_process(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores to pin the child to fewer than the machine has")
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "seg.mkv")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # Pinned to one core: x265's pool of 1 worker and its frame encoder's thread. Without `pools`
    # it started a pool worker for each core of the machine: 3 threads on this 2-core machine.
    assert int(run.stdout) <= 2


def test_the_thread_count_is_the_process_affinity():
    assert encoder_threads() == len(os.sched_getaffinity(0))
    x265 = threaded_options(EncoderSettings("x265").resolved(), 3)
    assert x265["x265-params"] == "log-level=error:pools=3"
    # x264 counts the process's cores itself; SVT-AV1 keeps its automatic choice.
    assert threaded_options(EncoderSettings("x264").resolved(), 3) == EncoderSettings("x264").resolved().options()
    assert threaded_options(EncoderSettings("svtav1").resolved(), 3)["svtav1-params"] == "lp=0"


@pytest.mark.parametrize("codec", ["nvenc-h264", "nvenc-hevc", "nvenc-av1"])
def test_nvenc_without_an_nvidia_gpu_is_one_line_before_work(tmp_path, capsys, codec):
    import av
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: NVENC may open")
    source = make_episode(tmp_path / "episode.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, cover_image=False))
    output = tmp_path / "out.mkv"
    assert main([str(source), "-o", str(output), "--codec", codec]) == 2
    err = capsys.readouterr().err.strip()
    encoder = codec.replace("nvenc-", "") + "_nvenc"
    if encoder in av.codecs_available:  # in every PyAV wheel; it opens only with the GPU and driver
        assert f"{encoder} does not open here: it needs an NVIDIA GPU with NVENC and its driver" in err
    else:
        assert f"has no {encoder}" in err
    assert len(err.splitlines()) == 1 and not output.exists()

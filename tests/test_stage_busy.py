"""Which stage is the bottleneck: each stage's busy share, timed with real threads that really work
(sleep) and really wait, and read from a real short run's progress lines."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.video.busy import STAGES, StageBusy

# Seconds of work per item for each stage: the model five times the decoder, the encoder twice.
# Sleeps only overshoot, by about a millisecond on an idle machine; these are far enough apart
# that a loaded test machine keeps their order.
WORK = {"decode": 0.02, "model": 0.10, "encode": 0.04}
ITEMS = 6


def _stage(busy: StageBusy, stage: str, ready: list[threading.Semaphore], done: list[threading.Semaphore]) -> None:
    """Take an item when the stage before hands one over (waiting, not busy), work on it, hand it on."""
    for _ in range(ITEMS):
        ready[0].acquire()
        with busy.working(stage):
            time.sleep(WORK[stage])
        done[0].release()


def test_the_slow_stage_is_named_and_the_shares_are_its_working_time():
    busy = StageBusy()
    decoded, upscaled, start = threading.Semaphore(0), threading.Semaphore(0), threading.Semaphore(ITEMS)
    finished = threading.Semaphore(0)
    links = {"decode": (start, decoded), "model": (decoded, upscaled), "encode": (upscaled, finished)}
    threads = [
        threading.Thread(target=_stage, args=(busy, stage, [links[stage][0]], [links[stage][1]])) for stage in STAGES
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    during = busy.shares()  # read while the model is still at work: its work so far counts
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    shares = busy.shares()
    assert set(shares) == set(STAGES) and all(0 <= share <= 100 for share in shares.values())
    assert busy.bottleneck() == "model"
    assert shares["model"] > shares["encode"] > shares["decode"]
    # The model worked ITEMS x 0.1 s of the run; the others waited for it most of the time.
    assert shares["model"] == pytest.approx(100 * ITEMS * WORK["model"] / wall, abs=10)
    assert during["model"] > 0
    line = busy.line()
    assert line.startswith("decode ") and " · model " in line and line.endswith("model is the bottleneck")


def test_nothing_to_show_before_any_stage_works():
    busy = StageBusy()
    assert busy.shares() == {} and busy.bottleneck() is None and busy.line() == ""


@pytest.mark.slow
def test_a_real_run_reports_each_stages_share(tmp_path):
    source = make_episode(tmp_path / "episode.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, cover_image=False))
    command = [sys.executable, "-m", "remaster", str(source), "-o", str(tmp_path / "out.mkv"), "--codec", "x264"]
    run = subprocess.run([*command, "--json-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    progress = [event for event in events if event["event"] == "progress"]
    assert progress
    for event in progress:
        assert set(event["busy"]) == set(STAGES)
        assert all(0 <= share <= 100 for share in event["busy"].values())
        assert event["bottleneck"] in STAGES
    # On a CPU the model is the slowest stage by far (seconds against milliseconds a frame).
    assert progress[-1]["bottleneck"] == "model"

"""SVT-AV1 opened by root makes the opening thread real-time (SCHED_FIFO), and every thread started
from it after: remaster puts its threads back to the normal policy after each encoder opens. Seen
here in a real `--codec svtav1` run, from inside the encoding thread while the encoder is working."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from remaster.core.presets import get_preset
from remaster.core.scheduling import thread_policies
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.engines.settings import EngineSettings
from remaster.video.encode import EncoderSettings
from remaster.video.pipeline import Remasterer
from remaster.video.plan import VideoSettings
from remaster.video.progress import QuietProgress

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux lists a process's threads")
NORMAL = (os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE)


class PolicyWatch(QuietProgress):
    """Progress that reads every thread's policy each time the encoder has taken frames."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[int, int]] = []

    def frames_done(self, count: int, held: int = 0) -> None:
        super().frames_done(count, held)
        self.seen.append(thread_policies())


def test_an_svtav1_run_keeps_every_thread_at_the_normal_policy(tmp_path):
    episode = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25))
    preset = get_preset("2x-conservative")
    encoder = EncoderSettings(codec="svtav1", speed="12").resolved()
    settings = VideoSettings(preset, preset.model, EngineSettings("cpu", "fp32", "0"), encoder, segment_seconds=0.25)
    watch = PolicyWatch()
    Remasterer(settings, watch).run(episode, tmp_path / "out.mkv")
    assert (tmp_path / "out.mkv").exists() and len(watch.seen) >= 2
    watch.seen.append(thread_policies())  # and after the run: the main thread opened the encoder to check it
    real_time = {tid for seen in watch.seen for tid, policy in seen.items() if policy not in NORMAL}
    assert not real_time, f"{len(real_time)} threads ran real-time, such as {sorted(real_time)[:5]}"

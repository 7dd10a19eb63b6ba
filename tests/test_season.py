"""A whole season survives one bad episode (issue 12's acceptance): of five episodes, the 2nd is
damaged and the 3rd's disk fills up mid-run; the others finish, the two are reported in one line
each, the exit code says some failed, and after space is freed a rerun finishes the 3rd without
computing again the segments it had finished. The faults are real: random bytes written over the
middle of a file, and a tmpfs filled by another writer while remaster runs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mounts import tmpfs
from test_error_path import _error_lines, _fill
from videotools import frame_times

from remaster.demo.samples import EpisodeSpec, make_episode

pytestmark = pytest.mark.slow

SPEC = EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25, ass_subtitles=False, cover_image=False)
OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264", "--fields", "progressive", "--json-progress"]
PRESET = "2x-conservative"  # the default: each output is <stem>.2x-conservative.mkv beside its input


def _output(source: Path) -> Path:
    return source.with_name(f"{source.stem}.{PRESET}.mkv")


def _damage(path: Path) -> None:
    """4 KiB of random bytes over the middle of the file, as a bad sector or a broken download does."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _season(paths: list[Path], stop_when=None) -> tuple[int, list[dict], str]:
    """Run `remaster` on the season as a user does; `stop_when(events)` may act on the run (it is
    called after each progress line). Returns the exit code, the JSON events and stderr."""
    command = [sys.executable, "-m", "remaster", *map(str, paths), *OPTIONS]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events: list[dict] = []
    for line in proc.stdout:
        if line.startswith("{"):
            events.append(json.loads(line))
            if stop_when is not None and stop_when(proc, events):
                stop_when = None
    stderr = proc.stderr.read()
    return proc.wait(), events, stderr


def _by_input(events: list[dict]) -> dict[str, list[dict]]:
    """Progress events grouped by the input they belong to (each run of an input opens with `start`)."""
    grouped: dict[str, list[dict]] = {}
    current = None
    for event in events:
        if event["event"] == "start":
            current = event["input"]
        if current is not None:
            grouped.setdefault(current, []).append(event)
    return grouped


def _segments(events: list[dict], state: str) -> set[int]:
    return {e["index"] for e in events if e["event"] == "segment" and e["state"] == state}


@pytest.mark.mounts
def test_a_season_survives_a_damaged_episode_and_a_full_disk(tmp_path):
    season, disk = tmp_path / "season", tmp_path / "disk"
    season.mkdir()
    with tmpfs(disk, "4m"):
        episodes = [season / "ep1.mkv", season / "ep2.mkv", disk / "ep3.mkv", season / "ep4.mkv", season / "ep5.mkv"]
        make_episode(episodes[0], SPEC)
        for episode in episodes[1:]:
            shutil.copy(episodes[0], episode)
        _damage(episodes[1])
        ep3 = str(episodes[2].absolute())

        def fill_the_disk_mid_episode_3(proc: subprocess.Popen, events: list[dict]) -> bool:
            mine = _by_input(events).get(ep3, [])
            if not _segments(mine, "done"):
                return False
            # Paused while another program fills ep3's disk, so that it runs out mid-episode.
            proc.send_signal(signal.SIGSTOP)
            _fill(disk)
            proc.send_signal(signal.SIGCONT)
            return True

        code, events, stderr = _season(episodes, fill_the_disk_mid_episode_3)
        assert "Traceback" not in stderr
        errors = _error_lines(stderr)
        assert len(errors) == 2, stderr
        assert errors[0].startswith(f"remaster: error: {episodes[1].absolute()}: damaged"), errors
        assert errors[1].startswith(f"remaster: error: {ep3}: no space left on device"), errors
        assert "3 done, 2 failed" in stderr
        assert code == 1  # one failure happened while working (the disk), so not 2
        for episode in (episodes[0], episodes[3], episodes[4]):
            assert frame_times(_output(episode)) == frame_times(episode)
        assert not _output(episodes[1]).exists() and not _output(episodes[2]).exists()
        finished = _segments(_by_input(events)[ep3], "done")
        assert finished

        (disk / "filler").unlink()  # the user frees space and runs the same command again
        code, events, stderr = _season(episodes)
        assert "Traceback" not in stderr
        runs = _by_input(events)
        assert set(runs) == {ep3}  # the finished episodes are skipped; the damaged one is refused before it starts
        mine = runs[ep3]
        start = mine[0]
        assert set(start["reused"]) == finished
        computed = _segments(mine, "started")
        assert not computed & finished and computed | finished == set(range(start["segments"]))
        assert frame_times(_output(episodes[2])) == frame_times(episodes[2])
        assert len(_error_lines(stderr)) == 1 and "damaged" in _error_lines(stderr)[0]
        assert code == 2  # only the damaged input is left: the input's fault

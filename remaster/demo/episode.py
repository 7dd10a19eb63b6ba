"""`remaster demo`'s material: a short synthetic episode to remaster (`samples.py`, which the tests and
benchmarks use too). Nothing in the pipeline imports this package; only the demo command does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from remaster.core.errors import UsageError
from remaster.demo.samples import EpisodeSpec, SampleError, find_font, make_episode


def make_demo_episode(folder: Path, width: int, height: int, seconds: float) -> Path:
    """`folder/episode.mkv`: two audio tracks, ASS (where a font is found) and SRT subtitles, chapters."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        spec = EpisodeSpec(width=width, height=height, seconds=seconds)
    except ValueError as exc:
        raise UsageError(f"demo: {exc}") from None
    try:
        find_font()
    except SampleError as exc:  # the demo still shows the whole flow, with SRT subtitles only
        print(f"note: no styled ASS track in the demo: {exc}")
        spec = replace(spec, ass_subtitles=False)
    return make_episode(folder / "episode.mkv", spec)

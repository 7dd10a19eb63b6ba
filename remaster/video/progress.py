"""Progress: rich bars for people, JSON lines for scripts, or nothing (--quiet).

Reporters are called from the encoder thread as frames are written, and from the main thread
at the start and the end; each call is short and does its own locking where needed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from remaster.wording import counted


@dataclass
class Summary:
    input: str
    output: str
    frames: int
    computed_frames: int  # frames the model ran on in this run
    reused_segments: list[int]
    computed_segments: list[int]
    seconds: float
    fps: float  # frames done (computed or reused) per second of this run
    size: int
    streams: list[str] = field(default_factory=list)  # what the output holds, one line per stream
    notes: list[str] = field(default_factory=list)  # streams dropped or converted
    reused_frames: int = 0  # held drawings that reused the previous result instead of the model


class QuietProgress:
    """Reports nothing; the base of the others, which override what they show."""

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        self._t0 = time.monotonic()
        self._frames_total = frames_total
        self._done = 0
        self._done_at_start = 0
        self._lock = threading.Lock()

    def reused(self, frames: int) -> None:
        with self._lock:
            self._done += frames
            self._done_at_start += frames

    def segment_started(self, index: int, frames: int) -> None:
        pass

    def frames_done(self, count: int) -> None:
        with self._lock:
            self._done += count

    def segment_done(self, index: int, frames: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass

    def stop(self) -> None:
        """Called when the run ends early, to leave the terminal clean."""

    def rate(self) -> tuple[float, float | None]:
        """Frames per second computed in this run, and the seconds left (None until known)."""
        elapsed = time.monotonic() - self._t0
        computed = self._done - self._done_at_start
        fps = computed / elapsed if elapsed > 0 else 0.0
        left = (self._frames_total - self._done) / fps if fps > 0 else None
        return fps, left


class JsonProgress(QuietProgress):
    """One JSON object per line on stdout: start, segment, progress, note, done."""

    def _emit(self, event: str, **fields: object) -> None:
        print(json.dumps({"event": event, **fields}), file=sys.stdout, flush=True)

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        super().start(input, output, frames_total, segments, reused)
        self._emit("start", input=input, output=output, frames=frames_total, segments=segments, reused=reused)

    def segment_started(self, index: int, frames: int) -> None:
        self._segment, self._segment_total, self._segment_done = index, frames, 0
        self._emit("segment", index=index, state="started", frames=frames)

    def frames_done(self, count: int) -> None:
        super().frames_done(count)
        self._segment_done += count
        fps, left = self.rate()
        self._emit(
            "progress",
            frames_done=self._done,
            frames_total=self._frames_total,
            segment=self._segment,
            segment_frames_done=self._segment_done,
            segment_frames=self._segment_total,
            fps=round(fps, 3),
            eta_seconds=None if left is None else round(left, 1),
        )

    def segment_done(self, index: int, frames: int) -> None:
        self._emit("segment", index=index, state="done", frames=frames)

    def note(self, message: str) -> None:
        self._emit("note", message=message)

    def finished(self, summary: Summary) -> None:
        self._emit("done", **asdict(summary))


class RichProgress(QuietProgress):
    """An overall bar and a current-segment bar, with frames, fps and ETA; a summary at the end."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, soft_wrap=True)

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        super().start(input, output, frames_total, segments, reused)
        self.console.print(
            f"[bold]{escape(input)}[/] -> {escape(output)}: {counted(frames_total, 'frame')} in "
            f"{counted(segments, 'segment')}",
            highlight=False,
        )
        if reused:
            self.console.print(f"resuming: {counted(len(reused), 'finished segment')} reused", highlight=False)
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._overall = self._bars.add_task("total", total=frames_total, fps="")
        self._segment_task = self._bars.add_task("segment", total=1, fps="", visible=False)
        self._bars.start()

    def reused(self, frames: int) -> None:
        super().reused(frames)
        self._bars.advance(self._overall, frames)

    def segment_started(self, index: int, frames: int) -> None:
        self._bars.reset(self._segment_task, total=frames, visible=True, description=f"segment {index}")

    def frames_done(self, count: int) -> None:
        super().frames_done(count)
        fps, _ = self.rate()
        self._bars.update(self._overall, advance=count, fps=f"{fps:.2f} fps")
        self._bars.update(self._segment_task, advance=count)

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)

    def finished(self, summary: Summary) -> None:
        self._bars.stop()
        self.console.print(
            f"[green]done[/] {escape(summary.output)}: {counted(summary.frames, 'frame')} in {summary.seconds:.1f} s "
            f"({summary.fps:.2f} fps); model run on {summary.computed_frames}, held drawings reused for "
            f"{summary.reused_frames}; {counted(len(summary.reused_segments), 'finished segment')} reused; "
            f"{summary.size / 1e6:.1f} MB",
            highlight=False,
        )
        for line in summary.streams:
            self.console.print(f"  kept {line}", highlight=False, markup=False)

    def stop(self) -> None:
        if hasattr(self, "_bars"):
            self._bars.stop()

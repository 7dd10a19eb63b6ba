"""Progress: rich bars for people, JSON lines for scripts, or nothing (--quiet).

Reporters are called from the encoder thread as frames are written, and from the main thread
at the start and the end; each call is short and does its own locking where needed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from remaster.core.wording import counted
from remaster.video.busy import StageBusy, bottleneck_of


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
    # Decoding in this process (0 under --ray, where workers decode): video packets read, and times the
    # source was opened to decode from a keyframe. A fresh run reads each packet once (video/decode.py).
    decoded_packets: int = 0
    decoder_opens: int = 0


# The model's rate is measured over at least the last minute and at least this many computed
# frames. A minute spans several batches and a segment's end (encoder flush, checkpoint) at the
# speeds measured on this CPU (0.4-0.7 fps at 640x480, docs/video.md), so none of them moves the
# estimate much, and a real change of speed (another job on the GPU) shows within about a minute.
# At slow speeds (a 4x model on 1080p on a CPU: several seconds a frame) a minute holds only a few
# frames: ten computed frames keep the jitter of one late batch to about a tenth.
ETA_WINDOW_SECONDS = 60.0
ETA_WINDOW_FRAMES = 10


class EtaEstimator:
    """Seconds left, from how fast the model computes frames in this run; a pure class, fed the times.

    Frames finished by an earlier run (checkpoints) are counted as done but never as speed. Frames
    that reused a held drawing cost nearly nothing: the time goes to the computed ones, and what is
    left is weighed by the share of frames that needed the model so far. The first report only
    starts the clock, so the model's warm-up (loading, the first batch) is not taken as its speed.
    """

    def __init__(
        self, frames_total: int, window_seconds: float = ETA_WINDOW_SECONDS, window_frames: int = ETA_WINDOW_FRAMES
    ):
        self.frames_total = frames_total
        self.window_seconds, self.window_frames = window_seconds, window_frames
        self.done = 0  # every frame done, from checkpoints included
        self.computed = 0  # frames the model ran on in this run
        self.held = 0  # frames of this run that reused a held drawing's result
        self._samples: deque[tuple[float, int]] = deque()  # (time, computed so far) at each report

    def checkpointed(self, frames: int) -> None:
        """Frames an earlier run finished: done, and no part of the speed."""
        self.done += frames

    def add(self, now: float, frames: int, held: int = 0) -> None:
        """`frames` written at time `now` (seconds, any monotonic clock), `held` of them reused."""
        self.done += frames
        self.computed += frames - held
        self.held += held
        self._samples.append((now, self.computed))
        # Drop the oldest report while the rest still spans the whole window.
        while len(self._samples) > 2:
            t1, c1 = self._samples[1]
            if now - t1 < self.window_seconds or self.computed - c1 < self.window_frames:
                break
            self._samples.popleft()

    def model_fps(self) -> float | None:
        """Frames the model computes a second, over the window; None before two reports."""
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or c1 <= c0:
            return None
        return (c1 - c0) / (t1 - t0)

    def fps(self) -> float | None:
        """Frames done a second at the model's rate, held drawings included at the share seen so far."""
        if not self._samples or (model := self.model_fps()) is None:
            return None
        return model * (self.computed + self.held) / self.computed

    def seconds_left(self) -> float | None:
        fps = self.fps()
        if fps is None:
            return None
        return max(0, self.frames_total - self.done) / fps


class QuietProgress:
    """Reports nothing; the base of the others, which override what they show."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock  # seconds; a test gives its own timeline
        self._lock = threading.Lock()
        self._frames_total = 0
        self._eta = EtaEstimator(0)  # a Ray task reports frames of a job it did not start()
        self.busy = StageBusy()  # each stage's working time, timed by run_stages (video/busy.py)

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        with self._lock:
            self._frames_total = frames_total
            self._eta = EtaEstimator(frames_total)

    @property
    def _done(self) -> int:
        return self._eta.done

    def reused(self, frames: int) -> None:
        """Frames of segments an earlier run finished."""
        with self._lock:
            self._eta.checkpointed(frames)

    def segment_started(self, index: int, frames: int) -> None:
        pass

    def frames_done(self, count: int, held: int = 0) -> None:
        """`count` frames written, `held` of which reused a held drawing's result instead of the model."""
        with self._lock:
            self._eta.add(self._clock(), count, held)

    def segment_done(self, index: int, frames: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass

    def stop(self) -> None:
        """Called when the run ends early, to leave the terminal clean."""

    def rate(self) -> tuple[float | None, float | None]:
        """Frames per second this run keeps up (None until known), and the seconds left (None until known)."""
        with self._lock:
            return self._eta.fps(), self._eta.seconds_left()


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

    def frames_done(self, count: int, held: int = 0) -> None:
        super().frames_done(count, held)
        self._segment_done += count
        fps, left = self.rate()
        shares = self.busy.shares()  # one reading: the shares and the stage named agree
        self._emit(
            "progress",
            frames_done=self._done,
            frames_total=self._frames_total,
            segment=self._segment,
            segment_frames_done=self._segment_done,
            segment_frames=self._segment_total,
            fps=None if fps is None else round(fps, 3),
            eta_seconds=None if left is None else round(left, 1),
            busy={stage: round(share, 1) for stage, share in shares.items()},
            bottleneck=bottleneck_of(shares),
        )

    def segment_done(self, index: int, frames: int) -> None:
        self._emit("segment", index=index, state="done", frames=frames)

    def note(self, message: str) -> None:
        self._emit("note", message=message)

    def finished(self, summary: Summary) -> None:
        self._emit("done", **asdict(summary))


class RichProgress(QuietProgress):
    """An overall bar and a current-segment bar, with frames, fps and ETA; a summary at the end."""

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
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
            # Rich's own time-remaining column takes every advance as speed, checkpoints and held
            # drawings included; the ETA shown is EtaEstimator's, the same as --json-progress gives.
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[busy]}"),
            console=self.console,
            transient=True,
        )
        self._overall = self._bars.add_task("total", total=frames_total, fps="", eta="", busy="")
        self._segment_task = self._bars.add_task("segment", total=1, fps="", eta="", busy="", visible=False)
        self._bars.start()

    def reused(self, frames: int) -> None:
        super().reused(frames)
        self._bars.advance(self._overall, frames)

    def segment_started(self, index: int, frames: int) -> None:
        self._bars.reset(self._segment_task, total=frames, visible=True, description=f"segment {index}")

    def frames_done(self, count: int, held: int = 0) -> None:
        super().frames_done(count, held)
        fps, left = self.rate()
        shown = {
            "fps": "" if fps is None else f"{fps:.2f} fps",
            "eta": "-:--:--" if left is None else _clock_time(left),
            "busy": self.busy.line(),
        }
        self._bars.update(self._overall, advance=count, **shown)
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


def _clock_time(seconds: float) -> str:
    """H:MM:SS, as rich's own time column showed it."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"

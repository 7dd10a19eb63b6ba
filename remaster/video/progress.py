"""Progress: a live line for people (fitted to the terminal), JSON lines for scripts, or nothing (--quiet).

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

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from remaster.core.wording import counted
from remaster.video.busy import StageBusy, bottleneck_of
from remaster.video.progress_line import LineState, fit_line


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

    def status(self, message: str) -> None:
        """What is happening before the first frame: "probing", "loading model", "measuring engines"."""

    def episode(self, position: int, count: int) -> None:
        """The next input is the `position`th (from 1) of `count` in the batch."""

    def finished(self, summary: Summary) -> None:
        pass

    def stop(self) -> None:
        """Called when the run ends early, to leave the terminal clean."""

    def batch_finished(self, done: int, failed: int, skipped: int) -> None:
        """The whole batch is over: inputs done, failed, and skipped (their output existed)."""

    def rate(self) -> tuple[float | None, float | None]:
        """Frames per second this run keeps up (None until known), and the seconds left (None until known)."""
        with self._lock:
            return self._eta.fps(), self._eta.seconds_left()


class JsonProgress(QuietProgress):
    """One JSON object per line on stdout: status, start, segment, progress, note, done; batch at the end."""

    def _emit(self, event: str, **fields: object) -> None:
        print(json.dumps({"event": event, **fields}), file=sys.stdout, flush=True)

    _episode = (1, 1)

    def episode(self, position: int, count: int) -> None:
        self._episode = (position, count)

    def status(self, message: str) -> None:
        self._emit("status", message=message)

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        super().start(input, output, frames_total, segments, reused)
        position, count = self._episode
        self._emit(
            "start",
            input=input,
            output=output,
            frames=frames_total,
            segments=segments,
            reused=reused,
            episode=position,
            episodes=count,
        )

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

    def batch_finished(self, done: int, failed: int, skipped: int) -> None:
        self._emit("batch", done=done, failed=failed, skipped=skipped)


class RichProgress(QuietProgress):
    """One live line for people, fitted to the terminal: what is happening before the first frame
    ("probing", "loading model"), then the bar with frames, fps and ETA (and, for a job of several
    segments, the current segment's bar below it); a summary when each input is done."""

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._live: Live | None = None
        self._episode: tuple[int, int] | None = None  # (position, count) in a batch of several inputs
        self._status: tuple[str, float] | None = None  # (what is happening, since when) until a frame is done
        self._started = False
        self._segments = 0
        self._segment: list[int] | None = None  # [index, frames done, frames] of the segment being computed

    def episode(self, position: int, count: int) -> None:
        self._episode = (position, count) if count > 1 else None

    def status(self, message: str) -> None:
        with self._lock:
            self._status = (message, self._clock())
        self._show()

    def start(self, input: str, output: str, frames_total: int, segments: int, reused: list[int]) -> None:
        super().start(input, output, frames_total, segments, reused)
        with self._lock:
            self._started, self._segments, self._segment = True, segments, None
        where = f"{self._label()}: " if self._episode else ""
        self.console.print(
            f"{where}[bold]{escape(input)}[/] -> {escape(output)}: {counted(frames_total, 'frame')} in "
            f"{counted(segments, 'segment')}",
            highlight=False,
        )
        if reused:
            self.console.print(f"resuming: {counted(len(reused), 'finished segment')} reused", highlight=False)
        self._show()

    def segment_started(self, index: int, frames: int) -> None:
        with self._lock:
            self._segment = [index, 0, frames]

    def frames_done(self, count: int, held: int = 0) -> None:
        super().frames_done(count, held)
        with self._lock:
            first, self._status = self._status is not None, None  # the bar replaces the status line
            if self._segment is not None:
                self._segment[1] += count
        if first and self._live is not None:
            self._live.refresh()

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)

    def finished(self, summary: Summary) -> None:
        self.stop()
        # The file, its frames, speed and size first, on a line that fits 80 columns for a short
        # path; how the frames were made on a second line, only where something was reused.
        self.console.print(
            f"[green]done[/] {escape(summary.output)}: {counted(summary.frames, 'frame')} in {summary.seconds:.1f} s "
            f"({summary.fps:.2f} fps), {summary.size / 1e6:.1f} MB",
            highlight=False,
        )
        if summary.reused_frames or summary.reused_segments:
            self.console.print(
                f"  model run on {summary.computed_frames}, held drawings reused for {summary.reused_frames}; "
                f"{counted(len(summary.reused_segments), 'finished segment')} reused",
                highlight=False,
            )
        for line in summary.streams:
            self.console.print(f"  kept {line}", highlight=False, markup=False)

    def stop(self) -> None:
        """The live line goes (it leaves nothing behind); the next input's status starts a new one."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        with self._lock:
            self._started, self._status, self._segment = False, None, None

    def batch_finished(self, done: int, failed: int, skipped: int) -> None:
        self.console.print(batch_line(done, failed, skipped), highlight=False)

    def _show(self) -> None:
        """Start the live line, or redraw it now: each status is seen, however short."""
        if self._live is None:
            self._live = Live(_LiveLines(self), console=self.console, transient=True, refresh_per_second=REFRESHES)
            self._live.start()
        self._live.refresh()

    def _label(self) -> str:
        return f"episode {self._episode[0]}/{self._episode[1]}" if self._episode else ""

    def lines(self, width: int) -> list[Text]:
        """What the live display shows at `width` cells: the status line, or the progress lines."""
        with self._lock:
            status, started, segment = self._status, self._started, list(self._segment or [])
            done, total, segments = self._done, self._frames_total, self._segments
        label = self._label()
        if status is not None:
            message, since = status
            said = f"{label}: {message}" if label else message
            return [Text(f"{said} ({self._clock() - since:.0f} s)", no_wrap=True, overflow="ellipsis")]
        if not started:
            return []
        fps, left = self.rate()
        labels = (label, label.removeprefix("episode ")) if label else ()
        shown = [fit_line(LineState(done, total, fps, left, labels=labels, extras=tuple(self.busy.forms())), width)]
        if segments > 1 and segment:  # one bar is enough for a job of one segment
            index, seg_done, seg_total = segment
            seg_label = (f"segment {index + 1}/{segments}", f"{index + 1}/{segments}")
            shown.append(fit_line(LineState(seg_done, seg_total, rate=False, labels=seg_label), width))
        return shown


# Redraws a second: rich's own default. Statuses and the first frames redraw at once (RichProgress._show).
REFRESHES = 4


class _LiveLines:
    """The renderable of RichProgress's live display: its lines at the width rich gives."""

    def __init__(self, progress: RichProgress):
        self._progress = progress

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self._progress.lines(options.max_width)


def batch_line(done: int, failed: int, skipped: int) -> str:
    """The last line of a run: `3 done, 1 failed, 1 skipped`."""
    return f"{done} done, {failed} failed, {skipped} skipped"

"""`remaster queue run`'s live display: a line for each running job, fitted to the terminal (job id,
input name, bar, frames, fps, ETA; before the first frame, what its child is doing), with the
workers' own lines printed above it. Transient: nothing of it is left once the run ends, and
nothing is drawn where stderr is not a terminal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from remaster.scaleout.queue.store import Job, Progress
from remaster.video.progress_line import LineState, fit_line

NAME_CHARS = 24  # an input name longer than this is cut short where the whole one does not fit
REFRESHES = 4  # redraws a second: rich's own default


class RunningJobs:
    """Use as a context manager around the workers; `say` and `shown(prefix)` are their callbacks."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self._clock = clock
        self._lock = threading.Lock()
        # worker prefix ("" for one worker, "[2] " for the second of several) -> its job, what its
        # child reported, and when the status it shows began
        self._running: dict[str, tuple[Job, Progress, float]] = {}
        self._live = Live(_Lines(self), console=console, transient=True, refresh_per_second=REFRESHES)

    def __enter__(self) -> RunningJobs:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def say(self, line: str) -> None:
        """A line printed for good, above the live lines."""
        self.console.print(line, markup=False, highlight=False)

    def shown(self, prefix: str = "") -> Callable[[Job, Progress | None], None]:
        """The `shown` callback of one worker (Worker): its job's progress, None once it ended."""

        def show(job: Job, progress: Progress | None) -> None:
            with self._lock:
                if progress is None:
                    self._running.pop(prefix, None)
                    return
                before = self._running.get(prefix)
                same = before is not None and before[0].id == job.id and before[1].status == progress.status
                since = before[2] if same else self._clock()
                # A copy: the child's reader goes on changing its own while the display reads this one.
                self._running[prefix] = (job, Progress(**vars(progress)), since)

        return show

    def lines(self, width: int) -> list[Text]:
        with self._lock:
            running = sorted(self._running.items())
        return [self._line(prefix, job, progress, since, width) for prefix, (job, progress, since) in running]

    def _line(self, prefix: str, job: Job, progress: Progress, since: float, width: int) -> Text:
        name = Path(job.input).name
        short = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
        labels = tuple(dict.fromkeys((f"{prefix}job {job.id} {name}", f"{prefix}job {job.id} {short}")))
        labels += (f"{prefix}job {job.id}",)
        if progress.frames_total is None or progress.status is not None:
            doing = progress.status or "starting"
            said = f"{labels[0]}: {doing} ({self._clock() - since:.0f} s)"
            return Text(said, no_wrap=True, overflow="ellipsis")
        state = LineState(
            progress.frames_done or 0, progress.frames_total, progress.fps, progress.eta_seconds, labels=labels
        )
        return fit_line(state, width)


class _Lines:
    def __init__(self, jobs: RunningJobs):
        self._jobs = jobs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self._jobs.lines(options.max_width)

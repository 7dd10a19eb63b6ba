"""What `remaster bench` is doing, on one transient line of the terminal while it measures: which
preset, precision and engine, and which round (warm-up, frame 3/5); gone when the table comes."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

REFRESHES = 4  # redraws a second (rich's default): the seconds counter moves while one frame takes long


class BenchStatus:
    """A context manager; `say` sets the line, and shows it at once, however short its step."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._said = ("", clock())
        self._live = Live(console=console, transient=True, refresh_per_second=REFRESHES, get_renderable=self._line)

    def __enter__(self) -> BenchStatus:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def say(self, message: str) -> None:
        self._said = (message, self._clock())
        self._live.refresh()

    def _line(self) -> Text:
        message, since = self._said
        return Text(f"{message} ({self._clock() - since:.0f} s)" if message else "", no_wrap=True, overflow="ellipsis")

"""Which stage holds the pipeline back: each stage's busy share of the run so far.

The stages run in threads joined by bounded queues (`stages.run_stages`); a stage that waits on
a queue is not busy. The slowest stage is busy nearly all the time and the others wait for it, so
the stage with the largest share of working time is the bottleneck: the model on a CPU, perhaps
the encoder on a GPU (a slow x265 preset at 4K), or the decoder of a heavy source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGES = ("decode", "model", "encode")


class StageBusy:
    """Seconds each stage spends working, against the time since `start`; safe to use from every
    stage's thread and to read from any. Work still in progress counts up to the moment of reading."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """Begin a run: nothing busy yet."""
        with self._lock:
            self._started = self._clock()
            self._busy = dict.fromkeys(STAGES, 0.0)
            self._since: dict[str, float] = {}  # stage -> when its work in progress began

    @contextmanager
    def working(self, stage: str) -> Iterator[None]:
        """Time the block as work of `stage` (one of STAGES)."""
        began = self._clock()
        with self._lock:
            self._since[stage] = began
        try:
            yield
        finally:
            ended = self._clock()
            with self._lock:
                self._busy[stage] += ended - self._since.pop(stage)

    def shares(self) -> dict[str, float]:
        """Percent of the time since `start` that each stage was working, 0-100; empty before any stage
        has worked (as in a process that only shows progress the workers of `--device` lists report)."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._started
            busy = {
                stage: seconds + (now - self._since[stage] if stage in self._since else 0.0)
                for stage, seconds in self._busy.items()
            }
        if elapsed <= 0 or not any(busy.values()):
            return {}
        return {stage: min(100.0, 100 * seconds / elapsed) for stage, seconds in busy.items()}

    def bottleneck(self) -> str | None:
        """The stage busy the largest share of the time; None before any stage has worked."""
        return bottleneck_of(self.shares())

    def line(self) -> str:
        """`decode  12% · model  85% · encode  40%, model is the bottleneck`; "" before any stage has worked."""
        forms = self.forms()
        return forms[0] if forms else ""

    def forms(self) -> list[str]:
        """The shares said in shorter and shorter forms, for a line with little room:
        `decode  12% · model  85% · encode  40%, model is the bottleneck`, `decode  12% · model  85% ·
        encode  40%`, `model busy  85%` (the bottleneck alone); none before any stage has worked."""
        shares = self.shares()  # one reading: the shares shown and the stage named agree
        if not shares:
            return []
        # Each share three wide: a live line keeps its length, and its bar its width, as they change.
        listed = " · ".join(f"{stage} {share:3.0f}%" for stage, share in shares.items())
        slowest = bottleneck_of(shares)
        return [f"{listed}, {slowest} is the bottleneck", listed, f"{slowest} busy {shares[slowest]:3.0f}%"]


def bottleneck_of(shares: dict[str, float]) -> str | None:
    """The stage with the largest of `shares` (a `StageBusy.shares` reading); None for none."""
    return max(shares, key=shares.__getitem__) if shares else None

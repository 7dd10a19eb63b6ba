"""Settings that belong to the whole process: applied once by an entry point, never by a constructor.

`cli.main` applies them before it runs a command; a Ray task, which runs in a worker process that
never went through `cli.main`, applies those that do not touch its signals. Constructing an
`Upscaler` or a `SegmentWriter` changes nothing outside the object, so the library can be used in
a process that has its own allocator, environment and signal handlers.

- malloc: glibc keeps freed memory for reuse instead of giving it back to the kernel. Every layer
  of the model makes a fresh map of tens of MB; glibc serves allocations that large with a new
  mmap, which the kernel must zero page by page on first touch, then munmaps on free. On a 2-core
  machine that doubled the time of a CPU run (1.55 s vs 2.86 s a frame, 2x, 480x360, fp32).
  Serving them from the heap, and not trimming it, reuses the pages.
- environment: SVT-AV1 prints its whole configuration to stderr unless SVT_LOG asks for errors
  only. It reads the variable when an encoder opens, in this process (segments) and in export's
  ffmpeg (which inherits it), so it is set before the first one.
- pictures: remaster's own size limit (remaster.core.limits, checked from every picture's header) replaces
  Pillow's, which stops at 179 MP with a DecompressionBombError even where the user raised ours.
  Without these settings (the library used on its own) Pillow's limit stays, and a picture over it
  is refused by `imagefiles.read_image` in one line all the same.
- signals: a queue manager or `kill` stops a run with SIGTERM; it is treated like Ctrl-C, which
  keeps every finished segment and removes the one in progress.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

from PIL import Image

# What this process has applied: "malloc", "environment", "pictures", "signals". Each is applied once.
APPLIED: set[str] = set()

# mallopt parameters, from <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# Free memory at the top of the heap that glibc keeps rather than trims: more than the largest
# map of a CPU run (a 4x model's activations at 1080p tile sizes are a few hundred MB).
_TRIM_THRESHOLD = 1 << 30


def apply_process_settings(*, signals: bool = True) -> None:
    """Apply the process-wide settings not applied yet. `signals=False` leaves the signal handlers
    to a host that has its own (a Ray worker)."""
    if "malloc" not in APPLIED:
        _keep_freed_memory()
        APPLIED.add("malloc")
    if "environment" not in APPLIED:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only; a value the user set wins
        APPLIED.add("environment")
    if "pictures" not in APPLIED:
        Image.MAX_IMAGE_PIXELS = None
        APPLIED.add("pictures")
    # Python only lets the main thread set a handler (in-process callers of cli.main may be threads).
    if signals and "signals" not in APPLIED and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        APPLIED.add("signals")


def _keep_freed_memory() -> None:
    """Serve large allocations from the heap and keep the heap's free top (see the module's doc)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl has no mallopt to speak of)
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

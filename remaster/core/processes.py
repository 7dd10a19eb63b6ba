"""Child processes that die with remaster: the queue's `remaster` children, export's ffmpeg.

A child started with `subprocess.Popen(..., preexec_fn=dies_with_this_process())` gets a signal from
the kernel when the thread that started it ends, however it ends (SIGKILL and the OOM killer
included), so nothing remaster started runs on unwatched and keeps writing files after it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# dlopen(NULL) here, in the parent: between fork and exec the child should do as little as it can.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(sig: int, parent: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; elsewhere the
    parent's own clean-up is all there is). `parent` is the pid that must still be the parent.

    The kernel sends it when the parent's thread that forked this process ends, not the whole
    process: start such children from a thread that lives as long as they should."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def dies_with_this_process(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` that makes the child get `sig` when this process dies. SIGKILL by default: a
    parent that dies without stopping its child was itself killed, and what the child was writing
    is of no use to anyone any more."""
    parent = os.getpid()
    return lambda: die_with_parent(sig, parent)

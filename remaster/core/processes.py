"""Child processes that die with remaster: the queue's `remaster` children, ffmpeg.

A command started as `subprocess.Popen(dying_with_this_process(command))` gets a signal from the
kernel when the thread that started it ends, however it ends (SIGKILL and the OOM killer
included), so nothing remaster started runs on unwatched and keeps writing files after it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

# Between fork and exec, a child of a process with threads (OpenVINO's, PyTorch's, the stages')
# should run no Python: "preexec_fn is not safe to use in the presence of threads; the child
# could deadlock before exec is called" (the subprocess docs), on a lock some thread of the parent
# held at the fork. (OpenVINO's own telemetry, a forked Python child, hung exactly so:
# engines/openvino_engine/runtime.py.) So the child execs this small program, which asks for the
# signal and execs the command itself; the kernel keeps PR_SET_PDEATHSIG across execve. -I -S: no
# site, no PYTHON* variables; about 20 ms a command.
# Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across execve: both go back
# to their defaults, as subprocess's restore_signals does, so that ffmpeg is stopped by the file
# size limit (and says so through its signal) rather than failing each write.
_DEATH_SIGNAL_PROGRAM = f"""
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, int(sys.argv[1]))
if os.getppid() != int(sys.argv[2]):  # as in die_with_parent: it died before prctl took effect
    os._exit(1)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
os.execvp(sys.argv[3], sys.argv[3:])
"""


def die_with_parent(sig: int, parent: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; elsewhere the
    parent's own clean-up is all there is). `parent` is the pid that must still be the parent.

    The kernel sends it when the parent's thread that forked this process ends, not the whole
    process: start such children from a thread that lives as long as they should."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def dying_with_this_process(command: Sequence[str], sig: int = signal.SIGKILL) -> list[str]:
    """`command` made to get `sig` when this process's starting thread ends (Linux; elsewhere
    `command` as it is). SIGKILL by default: a parent that dies without stopping its child was
    itself killed, and what the child was writing is of no use to anyone any more."""
    if _LIBC is None:
        return list(command)
    program = [sys.executable, "-I", "-S", "-c", _DEATH_SIGNAL_PROGRAM]
    return [*program, str(int(sig)), str(os.getpid()), *command]

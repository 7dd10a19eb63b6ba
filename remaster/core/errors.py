"""Errors a user sees as one line, and the exit codes that go with them.

Every exception remaster raises for a user to read is defined here:

    exception        exit  when
    ---------------  ----  ------------------------------------------------------------------
    UsageError          2  bad input or options, found before work where it can be: an unknown
                           preset or mode, an unreadable input, an output that would overwrite,
                           an encoder setting the encoder refuses
    DamagedInput        2  an input that decodes fewer frames than it promises (--allow-damaged)
    WeightsError        2  model weights that are missing, damaged or not a Real-CUGAN model
    QueueDamaged        2  a queue file SQLite finds damaged, with the way to save its jobs
    RemasterError       1  a failure while working: an encoder that fails mid-run, a check of
                           the finished file, an unexpected library error
    ResourceError       1  the machine stopped the work: disk full, read-only folder, out of memory
    Interrupted       130  Ctrl-C or SIGTERM; finished segments are kept for a rerun

A batch exits with 2 only when every failure was the input's fault (batch_exit_code).
"""

from __future__ import annotations

import errno
import os
import shlex
from pathlib import Path

# Exit codes: 2 for anything wrong with what the user gave us (argparse uses 2 as well),
# 1 for a failure while working, 130 for Ctrl-C (128 + SIGINT, as shells report it).
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class RemasterError(Exception):
    """A problem the user can act on; printed as one line, never as a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(RemasterError):
    """Bad input: an unknown preset, an unreadable file, an output that would overwrite."""

    exit_code = EXIT_USAGE


class WeightsError(RemasterError):
    """Model weights that are missing, damaged or not a Real-CUGAN model."""

    exit_code = EXIT_USAGE


class ResourceError(RemasterError):
    """The machine, not the input, stopped the work: disk full, a read-only or vanished folder,
    a file size limit, out of memory. Finished segments are kept, so a rerun resumes."""

    exit_code = EXIT_FAILURE


class DamagedInput(UsageError):
    """The file decodes fewer frames than its packets (or its index) promise."""


class Interrupted(RemasterError):
    """Ctrl-C or SIGTERM stopped the work; what was finished is kept."""

    exit_code = EXIT_INTERRUPTED


class QueueDamaged(UsageError):
    """A queue file that SQLite finds damaged: refused, with the way to save its jobs."""

    def __init__(self, path: Path, problem: str):
        q = shlex.quote(str(path))
        super().__init__(
            f"{path}: the queue file is damaged ({problem}); nothing was changed. Save the jobs that can still "
            f"be read with `remaster queue export jobs.json --queue {q}`, move {q} away, then "
            f"`remaster queue import jobs.json --queue {q}`"
        )


# errno -> (what happened, what to do about it). The causes a user can act on get advice; an
# errno not listed here is reported with the system's own words (os.strerror).
_OS_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", "free space and run again to resume"),
    errno.EDQUOT: ("disk quota exceeded", "free space and run again to resume"),
    errno.EFBIG: (
        "file too large (a file size limit, `ulimit -f`, or the filesystem's largest file)",
        "raise the limit or write elsewhere, and run again to resume",
    ),
    errno.EROFS: ("read-only filesystem", "choose another output folder (-o)"),
    errno.EACCES: ("permission denied", "check the folder's owner and permissions"),
    errno.EPERM: ("operation not permitted", "check the folder's owner and permissions"),
    errno.ENOENT: ("no such file or folder", "was it deleted or unmounted while remaster ran? run again to resume"),
    errno.ELOOP: ("symlink loop", "the path's symlinks point at each other"),
    errno.EISDIR: ("is a folder", "give a file"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.EIO: ("input/output error", "a failing disk or a share that went away; check it and run again"),
    errno.ENOMEM: ("out of memory", "give a smaller --tile (256, 128) and --batch 1"),
}
_MEMORY_ADVICE = "give a smaller --tile (256, 128) and --batch 1, or close other programs"


def _is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA or other devices), or the CPU allocator's failure,
    which torch raises as a plain RuntimeError. Named, not imported: this module must not load torch."""
    if isinstance(exc, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def describe_failure(exc: BaseException, path: Path | None = None) -> RemasterError:
    """Any failure of the work on `path` (an input) as a one-line RemasterError naming the input and
    the cause; remaster's own errors are returned as they are. The caller raises or reports it, and
    keeps `exc` as its cause for --debug."""
    if isinstance(exc, RemasterError):
        if path is not None and not any(str(p) in str(exc) for p in (path, os.path.abspath(path))):
            exc.args = (f"{path}: {exc}",)  # a batch's line must say which input failed
        return exc
    where = f"{path}: " if path is not None else ""
    if isinstance(exc, OSError) and exc.errno is not None:
        cause, advice = _OS_CAUSES.get(exc.errno, (os.strerror(exc.errno).lower(), ""))
        filename = exc.filename
        if path is not None and filename is not None and os.path.abspath(filename) == os.path.abspath(path):
            # The input itself: missing, unreadable, a folder. That is bad input, not a fault.
            return UsageError(f"{path}: {cause}")
        # These only happen on a write; others (a vanished folder, a permission) on either.
        verb = "writing" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS) else "at"
        text = f"{where}{cause}"
        if filename is not None:
            text += f" {verb} {filename}"
        return ResourceError(f"{text}: {advice}" if advice else text)
    if _is_out_of_memory(exc):
        return ResourceError(f"{where}out of memory: {_MEMORY_ADVICE}")
    # A bug or a library's own error: still one line and the batch goes on; --debug shows where.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__ + (f": {first_line}" if first_line else "")
    return RemasterError(f"{where}unexpected error: {name} (--debug shows the traceback)")


def batch_exit_code(failures: list[RemasterError]) -> int:
    """A batch's exit code: 0 if nothing failed; 2 only when every failure was the input's fault;
    otherwise the code of a failure while working (1)."""
    working = [exc.exit_code for exc in failures if exc.exit_code != EXIT_USAGE]
    return max(working) if working else EXIT_USAGE if failures else 0

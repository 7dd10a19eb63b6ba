"""The one rule for every file remaster writes: never destroy the input or a file the user has."""

from __future__ import annotations

import os
from pathlib import Path

from remaster.errors import UsageError


def refuse_to_destroy(source: Path, output: Path, overwrite: bool) -> None:
    """Raise a one-line UsageError if writing `output` would replace the input, a folder, or
    (without `overwrite`) any existing file."""
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise UsageError(f"{output}: is the input; choose another output")
    if output.is_dir():
        raise UsageError(f"{output}: is a folder")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: exists; add --overwrite to replace it")


def _current_umask() -> int:
    # os.umask() is read only by setting it, which for that moment changes it for every thread
    # (a file or a child process made then would get the wrong mode); Linux shows it in /proc.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # elsewhere: set a strict one for that moment, then put it back
    os.umask(umask)
    return umask


def apply_umask_mode(path: Path) -> None:
    """Give a file made by tempfile.mkstemp (always 0600) the mode any tool's new file gets:
    0666 less the umask (0644 under umask 022, 0664 under 002)."""
    path.chmod(0o666 & ~_current_umask())

"""The one rule for every file remaster writes: never destroy the input or a file the user has."""

from __future__ import annotations

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

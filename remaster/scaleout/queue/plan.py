"""`queue add`: from paths and options to job specs, refusing at once what would only fail later."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.commands.video import parse_video_options
from remaster.core.errors import UsageError
from remaster.core.outputs import refuse_to_destroy, video_output_path
from remaster.core.presets import get_preset
from remaster.scaleout.queue.store import JobSpec

if TYPE_CHECKING:
    import argparse


def check_options(options: Sequence[str], preset: str) -> argparse.Namespace:
    """Parse the options as the child will parse them, so that a typo fails now, once, rather than
    in every job; the queue's own -o, --preset and --json-progress must not be overridden."""
    shown = f"-- {shlex.join(options)}"
    probe_input, probe_output = Path("/queued/input.mkv"), Path("/queued/output.mkv")
    try:
        args = parse_video_options([str(probe_input), "-o", str(probe_output), "--preset", preset, *options])
    except UsageError as exc:
        raise UsageError(f"{shown}: {exc}") from None
    if args.output != probe_output or args.preset != preset:
        raise UsageError(f"{shown}: -o and --preset go before --: the queue sets them")
    if args.quiet:
        raise UsageError(f"{shown}: leave --quiet out: the queue reads the child's --json-progress")
    return args


def plan_jobs(
    paths: Sequence[Path], preset: str, folder: Path | None, options: Sequence[str], priority: int = 0
) -> list[JobSpec]:
    """One job per input; refuses missing inputs, outputs in the way (unless --overwrite is among the
    options) and two inputs that would write the same output. The store refuses outputs already queued."""
    name = get_preset(preset).name
    overwrite = check_options(options, name).overwrite
    if folder is not None:
        folder = Path(os.path.abspath(folder))
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: is a file; -o takes a folder")
    # abspath, not resolve: the worker may run elsewhere, and a symlinked input keeps its own name.
    cwd = os.getcwd()
    specs: list[JobSpec] = []
    seen: set[Path] = set()
    for path in paths:
        source = Path(os.path.abspath(path))
        if not source.is_file():
            raise UsageError(f"{source}: no such file" if not source.exists() else f"{source}: not a file")
        output = video_output_path(source, name, folder)
        if output in seen:
            raise UsageError(f"{output}: two of the inputs would write it")
        seen.add(output)
        refuse_to_destroy(source, output, overwrite, overwrite_option="`-- --overwrite`")
        specs.append(JobSpec(str(source), str(output), name, cwd, tuple(options), priority))
    return specs

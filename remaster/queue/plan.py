"""`queue add`: from paths and options to job specs, refusing at once what would only fail later."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from remaster.errors import UsageError
from remaster.presets import get_preset
from remaster.queue.store import JobSpec


def output_path(source: Path, preset: str, folder: Path | None) -> Path:
    """`<folder>/<stem>.<preset>.mkv`, or beside the source without a folder."""
    name = f"{source.stem}.{preset}.mkv"
    return folder / name if folder is not None else source.with_name(name)


def check_options(options: Sequence[str], preset: str) -> argparse.Namespace:
    """Parse the options as the child will parse them, so that a typo fails now, once, rather than
    in every job; the queue's own -o, --preset and --json-progress must not be overridden."""
    from remaster.cli import build_parser  # here, not above: remaster.cli imports the queue command

    shown = f"-- {shlex.join(options)}"
    probe_input, probe_output = Path("/queued/input.mkv"), Path("/queued/output.mkv")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(
                ["video", str(probe_input), "-o", str(probe_output), "--preset", preset, *options]
            )
    except SystemExit:  # argparse's way of saying no (or of printing help, which a job cannot use)
        lines = errors.getvalue().strip().splitlines()
        problem = lines[-1].split(": error: ", 1)[-1] if lines else "not options for a queued job"
        raise UsageError(f"{shown}: {problem}") from None
    except UsageError as exc:  # a mode's own parser (remaster/modes.py) says which values it takes
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
        output = output_path(source, name, folder)
        if output in seen:
            raise UsageError(f"{output}: two of the inputs would write it")
        seen.add(output)
        if output.is_dir():
            raise UsageError(f"{output}: is a folder")
        if output.exists() and not overwrite:
            raise UsageError(f"{output}: exists; add `-- --overwrite` to replace it")
        specs.append(JobSpec(str(source), str(output), name, cwd, tuple(options), priority))
    return specs

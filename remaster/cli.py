"""The `remaster` command: a thin layer that parses options and calls the modules that work."""

from __future__ import annotations

import argparse
import difflib
import gc
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from remaster import __version__
from remaster.commands import bench, compare, demo, export, image, presets, queue, testcard, video
from remaster.commands.options import DEBUG_HELP
from remaster.core.errors import EXIT_INTERRUPTED, UsageError, describe_failure
from remaster.core.process_settings import apply_process_settings

# In the order `remaster --help` lists them.
COMMANDS = {
    command.NAME: command for command in (video, demo, image, export, queue, compare, presets, bench, testcard)
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remaster",
        description="Remaster anime with Real-CUGAN. `remaster EPISODE.mkv --preset NAME` runs the video job.",
    )
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.register(subparsers)
    # --debug is global, before or after the command (each command's parser takes it too).
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def _implied_video(argv: list[str]) -> list[str]:
    """`remaster episode.mkv ...` is the video job: put the implied `video` before the first
    argument that is not --debug (a global flag, allowed before the command)."""
    first = next((i for i, arg in enumerate(argv) if arg != "--debug"), None)
    if first is None or argv[first] in COMMANDS or argv[first] in ("-h", "--help", "--version"):
        return argv
    word = argv[first]
    # A typo of a command (`remaster compre clip.mkv`) would otherwise be taken as an input, and
    # fail only after the other inputs were remastered. A word with no suffix or folder that is no
    # file and is close to a command name is that typo.
    if not word.startswith("-") and not Path(word).suffix and os.sep not in word and not os.path.lexists(word):
        close = difflib.get_close_matches(word, COMMANDS, n=1)
        if close:
            raise UsageError(f"unknown command '{word}' (did you mean {close[0]}?)")
    return [*argv[:first], video.NAME, *argv[first:]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    try:
        args = build_parser().parse_args(_implied_video(argv))
    except UsageError as exc:
        print(f"remaster: error: {exc}", file=sys.stderr)
        return exc.exit_code
    apply_process_settings()  # malloc, SVT_LOG, SIGTERM as Ctrl-C: see core/process_settings.py
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("remaster: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure is one line; --debug adds the traceback
        error = describe_failure(exc)
        if debug:
            traceback.print_exception(exc)
        print(f"remaster: error: {error}", file=sys.stderr)
        return error.exit_code


def run_command() -> NoReturn:
    """The `remaster` program (and `python -m remaster`): `main`, then exit.

    Every object is about to go: frozen, the garbage collector leaves them out of the passes it
    makes while the interpreter shuts down. With PyTorch imported those passes took 0.4-0.5 s of
    every run on two cores, 0.15 s frozen. Not in `main`, which tests call in their own process."""
    code = main()
    gc.freeze()
    sys.exit(code)

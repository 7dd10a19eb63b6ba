"""`remaster export IN --target NAME`: re-encode a video for a video site or an archive."""

from __future__ import annotations

import argparse
import tomllib

from remaster.commands.options import command_parser
from remaster.core.resources import named_tomls
from remaster.export.job import add_export_arguments, run_export_command
from remaster.export.targets import target_dirs

NAME = "export"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(
        subparsers,
        NAME,
        help="re-encode a video for a video site or an archive (a target)",
        epilog=targets_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_export_arguments(parser)


def targets_listing() -> str:
    """`export --help`'s list of targets, one a line with its description. Only the description is
    read here: a user's broken target must not break `--help` (using it says what is wrong)."""
    lines = ["targets (--target; your own go in the targets folder of your presets folder):"]
    for name, path in named_tomls(target_dirs()).items():
        try:
            description = str(tomllib.loads(path.read_text()).get("description", ""))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            description = f"{path}: unreadable"
        lines.append(f"  {name:<18} {description}" if description else f"  {name}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    return run_export_command(args)

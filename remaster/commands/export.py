"""`remaster export IN --target NAME`: re-encode a video for a video site or an archive."""

from __future__ import annotations

import argparse

from remaster.commands.options import command_parser
from remaster.export.job import add_export_arguments, run_export_command

NAME = "export"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="re-encode a video for a video site or an archive (a target)")
    add_export_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_export_command(args)

"""`remaster image IN...`: pictures in, upscaled pictures out."""

from __future__ import annotations

import argparse
from pathlib import Path

from remaster.commands.options import (
    add_engine_options,
    add_output_options,
    add_preset_option,
    command_parser,
    engine_settings,
)
from remaster.core.errors import batch_exit_code
from remaster.core.limits import MAX_PIXELS_HELP, parse_max_pixels

NAME = "image"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="upscale pictures (PNG, JPEG, WebP)")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="picture files or folders")
    add_output_options(parser, "a file for one input, else a folder", overwrite_help="replace outputs that exist")
    parser.add_argument("--max-pixels", type=parse_max_pixels, help=MAX_PIXELS_HELP)
    add_preset_option(parser)
    add_engine_options(parser)


def run(args: argparse.Namespace) -> int:
    from remaster.image.batch import run_image_command

    report = run_image_command(
        args.inputs,
        args.output,
        args.preset,
        engine_settings(args),
        args.overwrite,
        args.model,
        max_pixels=args.max_pixels,
    )
    return batch_exit_code(report.errors)

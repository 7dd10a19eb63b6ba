"""`remaster testcard OUT`: write a synthetic anime-like picture."""

from __future__ import annotations

import argparse
from pathlib import Path

from remaster.commands.options import command_parser, size

NAME = "testcard"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="write a synthetic anime-like picture")
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=size, default=(480, 360), metavar="WxH")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from remaster.media.imagefiles import write_image
    from remaster.media.testcard import anime_frame

    width, height = args.size
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.output, anime_frame(height, width, args.seed))
    return 0

"""`remaster demo [FOLDER]`: make a short sample episode and remaster it."""

from __future__ import annotations

import argparse
from pathlib import Path

from remaster.commands import video
from remaster.commands.options import DEFAULT_PRESET, command_parser, size

NAME = "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="make a short sample episode and remaster it")
    parser.add_argument("folder", type=Path, nargs="?", default=Path("out/demo"), help="default: %(default)s")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=size, default=(256, 144), metavar="WxH")


def run(args: argparse.Namespace) -> int:
    from remaster.demo.episode import make_demo_episode

    width, height = args.size
    episode = make_demo_episode(args.folder, width, height, args.seconds)
    print(
        f"made {episode}: {width}x{height}, {args.seconds:g} s, two audio tracks, ASS and SRT subtitles, chapters",
        flush=True,
    )
    output = args.folder / f"episode.{args.preset}.mkv"
    argv = [str(episode), "-o", str(output), "--preset", args.preset, "--overwrite"]
    return video.run(video.parse_video_options(argv))

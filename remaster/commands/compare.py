"""`remaster compare IN`: one frame by bicubic and by each preset (by default the announcement's
waifu2x, Real-ESRGAN and Real-CUGAN), side by side in one picture."""

from __future__ import annotations

import argparse
from pathlib import Path

from remaster.commands.options import (
    add_engine_options,
    add_output_options,
    command_parser,
    engine_settings,
    pair,
    parse_time,
)
from remaster.compare.lineup import ANNOUNCEMENT, DEFAULT_CROPS, DEFAULT_SCALE, MAX_CROPS

NAME = "compare"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(
        subparsers, NAME, help="one frame by bicubic, waifu2x, Real-ESRGAN and Real-CUGAN (or given presets) in a PNG"
    )
    parser.add_argument("input", type=Path, metavar="IN", help="a video (or a PNG/JPEG/WebP picture)")
    parser.add_argument("--at", type=parse_time, help="the frame: seconds or [H:]MM:SS[.ms] from the first frame")
    defaults = "; ".join(f"{scale}x: {', '.join(names)}" for scale, names in ANNOUNCEMENT.items())
    parser.add_argument(
        "--scale",
        type=int,
        help=f"the default comparison's scale, 2, 3 or 4 (default {DEFAULT_SCALE}): {defaults}",
    )
    parser.add_argument("--presets", help="comma-separated presets, one column each after bicubic, instead")
    parser.add_argument(
        "--crops", type=int, default=DEFAULT_CROPS, help=f"zoomed crops, 1 to {MAX_CROPS} (default: %(default)s)"
    )
    add_output_options(parser, "the grid (default: IN.compare-TIMEs.png beside IN)")
    parser.add_argument("--crop", type=pair("x", "WIDTHxHEIGHT"), metavar="WxH", help="crop size in source pixels")
    parser.add_argument(
        "--crop-at", type=pair(",", "X,Y"), metavar="X,Y", help="crop's top-left corner (default: the most detail)"
    )
    # The models are the presets': no --model; no --compile, whose first call costs more than one frame.
    add_engine_options(parser, model=False, compile=False)


def run(args: argparse.Namespace) -> int:
    from remaster.compare.grid import compare
    from remaster.core.outputs import compare_output_path

    presets = None if args.presets is None else tuple(name.strip() for name in args.presets.split(",") if name.strip())
    output = args.output or compare_output_path(args.input, args.at)
    report = compare(
        args.input,
        output,
        args.at,
        presets,
        args.crop,
        args.crop_at,
        engine_settings(args),
        args.overwrite,
        args.scale,
        args.crops,
    )
    crops = ", ".join(f"{w}x{h} at {x},{y}" for x, y, w, h in report.crops)
    when = "" if report.frame_time is None else f", frame at {report.frame_time:.3f} s"
    print(
        f"{report.output}: {report.size[0]}x{report.size[1]}, {', '.join(report.methods)}; "
        f"crops {crops}{when} ({report.seconds:.1f} s)"
    )
    for note in report.notes:
        print(f"  note: {note}")
    return 0

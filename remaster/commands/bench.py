"""`remaster bench`: model-only throughput for each precision, in a table."""

from __future__ import annotations

import argparse

from remaster.commands.options import add_engine_options, add_preset_option, command_parser, size

NAME = "bench"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="model-only throughput for each precision")
    add_preset_option(parser)
    parser.add_argument("--size", type=size, default=(480, 360), metavar="WxH")
    parser.add_argument("--frames", type=int, default=5)
    # Every precision this machine runs is measured, with the preset's model, uncompiled.
    add_engine_options(parser, model=False, precision=False, compile=False)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from remaster.bench import run_bench
    from remaster.engine.device import device_label
    from remaster.engine.vulkan import vulkan_devices
    from remaster.presets import get_preset

    preset = get_preset(args.preset)
    width, height = args.size
    console = Console()
    # Every Vulkan device ncnn sees, GPUs and software ones alike: the first thing to check after an install.
    devices = vulkan_devices()
    console.print("Vulkan devices: " + (", ".join(d.label for d in devices) if devices else "none"), highlight=False)
    rows = run_bench(preset.model, width, height, args.frames, args.device, args.tile, args.engine)
    where = device_label(args.device)  # says whether the GPU is seen: the first thing to check after an install
    table = Table(title=f"{preset.name}, {width}x{height}, median of {args.frames} frames, model only, on {where}")
    for column in ("precision", "s/frame", "frames/s", "PSNR vs fp32 (dB)"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.precision + (" (auto)" if row.auto else ""),
            f"{row.seconds_per_frame:.3f}",
            f"{1 / row.seconds_per_frame:.2f}",
            f"{row.psnr_vs_fp32:.1f}",
        )
    console.print(table)
    return 0

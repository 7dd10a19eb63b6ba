"""`remaster bench`: model-only throughput for each precision and each preset, in a table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from remaster.commands.options import DEFAULT_PRESET, add_engine_options, command_parser, size

if TYPE_CHECKING:
    from rich.console import Console

NAME = "bench"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="model-only throughput for each precision and preset")
    parser.add_argument(
        "--preset",
        action="append",
        help=f"see `remaster presets`; repeat it to compare families (default: {DEFAULT_PRESET})",
    )
    parser.add_argument("--size", type=size, default=(480, 360), metavar="WxH")
    parser.add_argument("--frames", type=int, default=5)
    # Every precision this machine runs is measured, with the presets' models, uncompiled.
    add_engine_options(parser, model=False, precision=False, compile=False)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from remaster.architectures.descriptor import family_title
    from remaster.bench.measure import run_bench
    from remaster.bench.status import BenchStatus
    from remaster.core.presets import get_preset
    from remaster.engines.device import device_label

    presets = [get_preset(name) for name in args.preset or [DEFAULT_PRESET]]  # unknown names fail before any run
    width, height = args.size
    console = Console()
    with BenchStatus(Console(stderr=True)) as status:
        status.say("looking for Vulkan, OpenVINO and TensorRT devices")
        _say_devices(console)
        where = device_label(args.device)  # says whether the GPU is seen: the first thing to check after an install
        table = Table(title=f"{width}x{height}, median of {args.frames} frames, model only, on {where}")
        for column in ("preset", "family", "precision", "s/frame", "frames/s", "PSNR vs fp32 (dB)"):
            table.add_column(column, justify="left" if column in ("preset", "family") else "right")
        for preset in presets:

            def measuring(message: str, name: str = preset.name) -> None:
                status.say(f"measuring {name}: {message}")

            rows = run_bench(preset.model, width, height, args.frames, args.device, args.tile, args.engine, measuring)
            for row in rows:
                table.add_row(
                    preset.name,
                    family_title(row.family),
                    row.precision + (" (auto)" if row.auto else ""),
                    f"{row.seconds_per_frame:.3f}",
                    f"{1 / row.seconds_per_frame:.2f}",
                    f"{row.psnr_vs_fp32:.1f}",
                )
    console.print(table)
    return 0


def _say_devices(console: Console) -> None:
    """Every Vulkan device ncnn sees, GPUs and software ones alike, OpenVINO's devices, as
    `--engine openvino --device` names them, and TensorRT: the first thing to check after an install."""
    from remaster.engines.openvino_engine.runtime import device_list
    from remaster.engines.tensorrt_engine.runtime import tensorrt_summary
    from remaster.engines.vulkan import vulkan_devices

    devices = vulkan_devices()
    console.print("Vulkan devices: " + (", ".join(d.label for d in devices) if devices else "none"), highlight=False)
    openvino = device_list()
    console.print(
        "OpenVINO devices (--engine openvino --device ...): "
        + (", ".join(openvino) if openvino else "none (pip install 'remaster[openvino]')"),
        highlight=False,
        markup=False,
    )
    # markup off: rich would take "[tensorrt]" in the extra's name for a style tag and drop it.
    console.print(f"TensorRT: {tensorrt_summary()}", highlight=False, markup=False)

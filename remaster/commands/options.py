"""The options that several commands take, declared once: the engine's, the output's, the preset,
`--debug`, and the value types (sizes, times) their arguments share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from remaster.core.errors import UsageError
from remaster.core.precision import Precision, parse_precision
from remaster.engines.kinds import Engine, parse_engine

if TYPE_CHECKING:  # the engine pulls in torch: import it only when a command runs, not for `--help`
    from remaster.engines.settings import EngineSettings

DEFAULT_PRESET = "2x-conservative"
DEBUG_HELP = "on an error, print the traceback too"

_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")


class CheckingParser(argparse.ArgumentParser):
    """A parser for options checked inside a running program (a queued job's): it says no with a
    UsageError carrying argparse's message, where argparse would print to stderr and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def print_help(self, file: object = None) -> NoReturn:
        raise UsageError("-h/--help: not an option here")


def command_parser(subparsers: argparse._SubParsersAction, name: str, **kwargs: object) -> argparse.ArgumentParser:
    """The parser of one command, with the global --debug that may also come after the command."""
    parser = subparsers.add_parser(name, **kwargs)
    # SUPPRESS: a command's parser must not reset to False the --debug given before the command.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def pair(separator: str, what: str) -> Callable[[str], tuple[int, int]]:
    """An argument type for two integers such as `640x360` or `12,40`."""

    def parse(value: str) -> tuple[int, int]:
        try:
            a, b = (int(v) for v in value.lower().split(separator))
        except ValueError:
            raise argparse.ArgumentTypeError(f"want {what}, got {value!r}") from None
        return a, b

    return parse


size = pair("x", "WIDTHxHEIGHT")


def parse_time(value: str) -> float:
    """Seconds (`90.5`) or a clock (`1:30.5`, `0:01:30.5`), as ffmpeg and mpv accept."""
    try:
        return float(value)
    except ValueError:
        pass
    match = _CLOCK.fullmatch(value)
    if match is None:
        raise argparse.ArgumentTypeError(f"want seconds or [H:]MM:SS[.ms], got {value!r}")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="see `remaster presets` (default: %(default)s)")


def add_engine_options(
    parser: argparse.ArgumentParser, *, model: bool = True, precision: bool = True, compile: bool = True
) -> None:
    """--model, --tile, --device, --precision and --compile; a command leaves out those it sets itself
    (bench runs every precision; compare takes its models from --presets)."""
    if model:
        parser.add_argument(
            "--model", help="use this model instead of the preset's: a name, or a .pth/.safetensors/.param path"
        )
    parser.add_argument("--tile", default="auto", help="tile side: auto, 0 (whole frame) or a multiple of 4 >= 64")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda[:N], mps, xpu[:N] or vulkan[:N]; video: several (cuda:0,cuda:1) or all, a worker "
        "each, or pipelines per device (cuda:0*2, cuda:0*auto)",
    )
    engine_help = (
        "auto, torch, ncnn, openvino or tensorrt: on a CPU, auto takes the one measured fastest for the model;"
        " on CUDA, tensorrt where installed, else torch"
    )
    parser.add_argument("--engine", default=Engine.AUTO, type=parse_engine, help=engine_help)
    if precision:
        precision_help = "auto, fp32, bf16 or fp16"
        parser.add_argument("--precision", default=Precision.AUTO, type=parse_precision, help=precision_help)
    if compile:
        parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow first frame)")


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The engine options as the engine takes them; a command without --compile never compiles."""
    from remaster.engines.settings import EngineSettings

    compile_model = getattr(args, "compile", False)
    return EngineSettings(args.device, args.precision, args.tile, compile_model, engine=args.engine)


def add_output_options(
    parser: argparse.ArgumentParser,
    output_help: str,
    overwrite_help: str = "replace an output that exists",
    output_action: type[argparse.Action] | None = None,
) -> None:
    """-o/--output and --overwrite: every command that writes a file takes both."""
    if output_action is None:
        parser.add_argument("-o", "--output", type=Path, help=output_help)
    else:
        parser.add_argument("-o", "--output", action=output_action, help=output_help)
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)

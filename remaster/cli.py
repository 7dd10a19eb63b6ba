"""The `remaster` command: a thin layer that parses options and calls the modules that work."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from remaster import __version__
from remaster.compare import add_compare_arguments, run_compare_command
from remaster.engine.precision import Precision, parse_precision
from remaster.errors import EXIT_INTERRUPTED, UsageError, batch_exit_code, describe_failure
from remaster.export import add_export_arguments, run_export_command
from remaster.limits import MAX_PIXELS_HELP, parse_max_pixels
from remaster.process_settings import apply_process_settings
from remaster.queue.command import add_queue_arguments, run_queue_command
from remaster.video_command import add_video_options


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want WIDTHxHEIGHT, got {value!r}") from None
    return w, h


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="2x-conservative", help="see `remaster presets` (default: %(default)s)")
    parser.add_argument("--model", help="use this model instead of the preset's: a name, or a .pth/.param path")
    parser.add_argument("--tile", default="auto", help="tile side: auto, 0 (whole frame) or a multiple of 4 >= 64")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--precision", default=Precision.AUTO, type=parse_precision, help="auto, fp32, bf16 or fp16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow first frame)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remaster",
        description="Remaster anime with Real-CUGAN. `remaster EPISODE.mkv --preset NAME` runs the video job.",
    )
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    video = commands.add_parser("video", help="remaster videos (the default: `remaster IN...` means this)")
    video.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="video files")
    _engine_options(video)
    add_video_options(video)

    demo = commands.add_parser("demo", help="make a short sample episode and remaster it")
    demo.add_argument("folder", type=Path, nargs="?", default=Path("out/demo"), help="default: %(default)s")
    demo.add_argument("--preset", default="2x-conservative")
    demo.add_argument("--seconds", type=float, default=2.0)
    demo.add_argument("--size", type=_size, default=(256, 144), metavar="WxH")

    image = commands.add_parser("image", help="upscale pictures (PNG, JPEG, WebP)")
    image.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="picture files or folders")
    image.add_argument("-o", "--output", type=Path, help="a file for one input, else a folder")
    image.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    image.add_argument("--max-pixels", type=parse_max_pixels, help=MAX_PIXELS_HELP)
    _engine_options(image)

    export = commands.add_parser("export", help="re-encode a video for a video site or an archive (a target)")
    add_export_arguments(export)

    queue = commands.add_parser("queue", help="a queue of video jobs: add, status, run, retry, pause, log...")
    add_queue_arguments(queue)

    compare = commands.add_parser("compare", help="one frame by bicubic and by each preset, side by side in a PNG")
    add_compare_arguments(compare)

    presets = commands.add_parser("presets", help="list the presets")
    presets.add_argument("--show", metavar="NAME", help="print one preset's settings")

    bench = commands.add_parser("bench", help="model-only throughput for each precision")
    bench.add_argument("--preset", default="2x-conservative")
    bench.add_argument("--size", type=_size, default=(480, 360), metavar="WxH")
    bench.add_argument("--frames", type=int, default=5)
    bench.add_argument("--device", default="auto")
    bench.add_argument("--tile", default="auto")

    testcard = commands.add_parser("testcard", help="write a synthetic anime-like picture")
    testcard.add_argument("output", type=Path)
    testcard.add_argument("--size", type=_size, default=(480, 360), metavar="WxH")
    testcard.add_argument("--seed", type=int, default=0)
    # --debug is global, before or after the command. SUPPRESS: a command's parser must not
    # reset to False what was given before the command.
    debug_help = "on an error, print the traceback too"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def _cmd_image(args: argparse.Namespace) -> int:
    from remaster.engine.upscaler import EngineSettings
    from remaster.image_command import run_image_command

    settings = EngineSettings(args.device, args.precision, args.tile, args.compile)
    report = run_image_command(
        args.inputs, args.output, args.preset, settings, args.overwrite, args.model, max_pixels=args.max_pixels
    )
    return batch_exit_code(report.errors)


def _cmd_presets(args: argparse.Namespace) -> int:
    from remaster.models.catalog import packaged_models
    from remaster.presets import get_preset, load_presets
    from remaster.resources import user_dir

    console = Console(soft_wrap=True)
    if args.show:
        preset = get_preset(args.show)
        console.print(f"# {preset.name}, from {preset.path}; command-line options override these", highlight=False)
        text = f'description = "{preset.description}"\n\n[model]\nname = "{preset.model}"\n'
        console.print(text, highlight=False, markup=False)
        console.print("[encoder]", highlight=False, markup=False)
        for key, value in asdict(preset.encoder).items():
            console.print(f"{key} = {value!r}".replace("'", '"'), highlight=False, markup=False)
        return 0
    packaged = packaged_models()
    table = Table(title=f"Presets (yours go in {user_dir('presets')})")
    for column in ("name", "scale", "variant", "denoise", "use"):
        table.add_column(column)
    for preset in load_presets().values():
        model = packaged.get(preset.model)
        if model is None:  # a user's checkpoint, or a packaged model whose package is missing
            table.add_row(preset.name, "?", "?", "?", f"model {preset.model}; {preset.description}")
        else:
            table.add_row(preset.name, f"{model.scale}x", model.variant, model.denoise, preset.description)
    console.print(table)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from remaster.bench import run_bench
    from remaster.presets import get_preset

    preset = get_preset(args.preset)
    width, height = args.size
    rows = run_bench(preset.model, width, height, args.frames, args.device, args.tile)
    table = Table(title=f"{preset.name}, {width}x{height}, median of {args.frames} frames, model only")
    for column in ("precision", "s/frame", "frames/s", "PSNR vs fp32 (dB)"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.precision + (" (auto)" if row.auto else ""),
            f"{row.seconds_per_frame:.3f}",
            f"{1 / row.seconds_per_frame:.2f}",
            f"{row.psnr_vs_fp32:.1f}",
        )
    Console().print(table)
    return 0


def _cmd_testcard(args: argparse.Namespace) -> int:
    from remaster.imagefiles import write_image
    from remaster.testcard import anime_frame

    width, height = args.size
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.output, anime_frame(height, width, args.seed))
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    from remaster.video_command import run_video_command

    return run_video_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from remaster.samples import EpisodeSpec, SampleError, find_font, make_episode
    from remaster.video_command import run_video_command

    args.folder.mkdir(parents=True, exist_ok=True)
    width, height = args.size
    try:
        spec = EpisodeSpec(width=width, height=height, seconds=args.seconds)
    except ValueError as exc:
        raise UsageError(f"demo: {exc}") from None
    try:
        find_font()
    except SampleError as exc:  # the demo still shows the whole flow, with SRT subtitles only
        print(f"note: no styled ASS track in the demo: {exc}")
        spec = replace(spec, ass_subtitles=False)
    episode = make_episode(args.folder / "episode.mkv", spec)
    print(
        f"made {episode}: {width}x{height}, {args.seconds:g} s, two audio tracks, ASS and SRT subtitles, chapters",
        flush=True,
    )
    output = args.folder / f"episode.{args.preset}.mkv"
    argv = [str(episode), "-o", str(output), "--preset", args.preset, "--overwrite"]
    return run_video_command(build_parser().parse_args(["video", *argv]))


COMMANDS = {
    "queue": run_queue_command,
    "export": run_export_command,
    "compare": run_compare_command,
    "video": _cmd_video,
    "demo": _cmd_demo,
    "image": _cmd_image,
    "presets": _cmd_presets,
    "bench": _cmd_bench,
    "testcard": _cmd_testcard,
}


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
    return [*argv[:first], "video", *argv[first:]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    try:
        args = build_parser().parse_args(_implied_video(argv))
    except UsageError as exc:
        print(f"remaster: error: {exc}", file=sys.stderr)
        return exc.exit_code
    apply_process_settings()  # malloc, SVT_LOG, SIGTERM as Ctrl-C: see process_settings.py
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("remaster: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure is one line; --debug adds the traceback
        error = describe_failure(exc)
        if debug:
            traceback.print_exception(exc)
        print(f"remaster: error: {error}", file=sys.stderr)
        return error.exit_code

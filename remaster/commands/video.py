"""`remaster video IN...` (also `remaster IN...`): its options, and from them the settings of each job."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.commands.options import (
    CheckingParser,
    add_engine_options,
    add_output_options,
    add_preset_option,
    command_parser,
    engine_settings,
    parse_time,
)
from remaster.core.errors import UsageError
from remaster.core.limits import MAX_PIXELS_HELP, parse_max_pixels
from remaster.core.presets import Preset, get_preset
from remaster.video.fields import FieldMode, parse_fields
from remaster.video.reuse import ReuseMode, parse_reuse

if TYPE_CHECKING:  # the pipeline pulls in torch: import it only when a video job runs
    from remaster.video.plan import VideoSettings

NAME = "video"


class OutputArgument(argparse.Action):
    """-o as a Path, remembering a trailing slash (which Path drops): `-o new-folder/` is a folder."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object, *_: object):
        setattr(namespace, self.dest, Path(str(value)))
        namespace.output_is_folder = str(value).endswith(("/", os.sep))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="remaster videos (the default: `remaster IN...` means this)")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="video files")
    add_preset_option(parser)
    add_engine_options(parser)
    add_video_options(parser)


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """Everything after the engine options; None means: take it from the preset."""
    add_output_options(
        parser, "a .mkv/.mp4 file for one input, else a folder (DIR/ or existing)", output_action=OutputArgument
    )
    parser.set_defaults(output_is_folder=False)
    parser.add_argument(
        "--batch", default="auto", help="frames per model call: auto (GPU: as many as fit, up to 4; CPU: 1) or N"
    )
    parser.add_argument("--codec", help="x265 (default), x264, svtav1, nvenc-hevc, nvenc-h264, nvenc-av1")
    parser.add_argument("--crf", type=float, help="constant quality (lower is better; preset default 16)")
    parser.add_argument("--speed", help="the encoder's own preset: medium, slow... (SVT-AV1: 0-13, NVENC: p1-p7)")
    parser.add_argument(
        "--pix-fmt", help="output pixel format (default: the preset's, yuv420p10le; with another --codec, that codec's)"
    )
    parser.add_argument("--segment-seconds", type=float, help="checkpoint every N seconds of video (default 30)")
    parser.add_argument("--workdir", type=Path, help="where segments go (default: a hidden folder beside the output)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the segments after success")
    parser.add_argument(
        "--no-space-check", action="store_true", help="skip the check for free space (not the write test) before work"
    )
    parser.add_argument("--start", type=parse_time, help="remaster from this time (seconds or H:MM:SS)")
    parser.add_argument("--end", type=parse_time, help="... up to this time")
    parser.add_argument("--allow-damaged", action="store_true", help="go on when frames are missing or corrupt")
    parser.add_argument("--max-pixels", type=parse_max_pixels, help=MAX_PIXELS_HELP.replace("pictures", "videos"))
    parser.add_argument(
        "--reuse",
        default=ReuseMode.AUTO,
        type=parse_reuse,
        help="held drawings reuse the last result: auto (default), exact or off",
    )
    parser.add_argument(
        "--fields",
        default=FieldMode.AUTO,
        type=parse_fields,
        help="auto (detect with idet), progressive, deinterlace or ivtc (inverse telecine)",
    )
    parser.add_argument(
        "--field-rate", action="store_true", help="deinterlace to one frame per field (29.97i -> 59.94p, 25i -> 50p)"
    )
    parser.add_argument(
        "--square-pixels", action="store_true", help="resample anamorphic video (e.g. DVD 720x480) to square pixels"
    )
    parser.add_argument("--target", help="then export the result for upload or archive (see `remaster export`)")
    parser.add_argument(
        "--burn-subs", nargs="?", const="default", metavar="TRACK", help="with --target: burn a subtitle track in"
    )
    parser.add_argument(
        "--ray", metavar="ADDRESS", help="spread the segments over a Ray cluster: local, auto or ray://HOST:PORT"
    )
    parser.add_argument("--ray-gpus", type=float, help="GPUs per Ray task (default: 1 where the cluster has GPUs)")
    parser.add_argument(
        "--ray-shared-workdir", action="store_true", help="Ray tasks write segments to the (shared) work folder"
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="print errors only")
    shown.add_argument("--json-progress", action="store_true", help="print one JSON object per line on stdout")


def parse_video_options(argv: Sequence[str]) -> argparse.Namespace:
    """`remaster video ARGV` parsed by the command's own parser, inside this process: a mistake is a
    UsageError with argparse's message, never an exit (the queue checks a job's options this way)."""
    parser = CheckingParser(prog="remaster")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args([NAME, *argv])


def video_settings(args: argparse.Namespace, preset: Preset) -> VideoSettings:
    from remaster.video.encode import EncoderSettings
    from remaster.video.plan import VideoSettings

    defaults = preset.encoder
    encoder = EncoderSettings(
        codec=args.codec or defaults.codec,
        crf=args.crf if args.crf is not None else defaults.crf,
        speed=args.speed or (defaults.speed if (args.codec or defaults.codec) == defaults.codec else ""),
        pix_fmt=args.pix_fmt or (defaults.pix_fmt if (args.codec or defaults.codec) == defaults.codec else ""),
    ).resolved()
    batch = parse_batch(args.batch)
    return VideoSettings(
        preset=preset,
        model=args.model or preset.model,
        engine=engine_settings(args),
        encoder=encoder,
        batch=batch,
        segment_seconds=args.segment_seconds or defaults.segment_seconds,
        workdir=args.workdir,
        keep_workdir=args.keep_workdir,
        overwrite=args.overwrite,
        start=args.start,
        end=args.end,
        allow_damaged=args.allow_damaged,
        reuse=args.reuse,
        square_pixels=args.square_pixels,
        fields=args.fields,
        field_rate=args.field_rate,
        max_pixels=args.max_pixels,
    )


def refuse_pictures(inputs: Sequence[Path]) -> None:
    """A picture given to the video job would come out as a one-frame video: say which command
    upscales pictures instead."""
    from remaster.media.imagefiles import INPUT_SUFFIXES

    for path in inputs:
        if path.suffix.lower() in INPUT_SUFFIXES:
            raise UsageError(
                f"{path}: a picture; the video job makes videos. For pictures:"
                f" remaster image {path} -o OUT{path.suffix}"
            )


def run(args: argparse.Namespace) -> int:
    from remaster.video_batch import VideoBatch, run_videos

    refuse_pictures(args.inputs)
    settings = video_settings(args, get_preset(args.preset))
    batch = VideoBatch(
        inputs=args.inputs,
        output=args.output,
        output_is_folder=args.output_is_folder,
        target=args.target,
        burn_subs=args.burn_subs,
        ray=args.ray,
        ray_gpus=args.ray_gpus,
        ray_shared_workdir=args.ray_shared_workdir,
        space_check=not args.no_space_check,
        quiet=args.quiet,
        json_progress=args.json_progress,
        debug=getattr(args, "debug", False),  # absent when --debug was not given (SUPPRESS)
    )
    return run_videos(batch, settings)


def parse_batch(value: str) -> int | None:
    """`--batch`: auto -> None (the engine chooses from free memory), else a count from 1 up."""
    if value == "auto":
        return None
    try:
        batch = int(value)
    except ValueError:
        batch = 0
    if batch < 1:
        raise UsageError(f"--batch {value}: want auto or a count from 1 up")
    return batch

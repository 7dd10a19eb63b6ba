"""`remaster INPUT... --preset NAME`: command-line options -> settings -> the pipeline, per input."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.errors import RemasterError, UsageError, batch_exit_code, describe_failure
from remaster.limits import MAX_PIXELS_HELP, parse_max_pixels
from remaster.outputs import check_input, check_output_location
from remaster.presets import Preset, get_preset
from remaster.video.fields import FieldMode, parse_fields
from remaster.video.reuse import ReuseMode, parse_reuse
from remaster.wording import counted

if TYPE_CHECKING:  # the pipeline pulls in torch: import it only when a video job runs
    from remaster.video.pipeline import VideoSettings

_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")


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


class OutputArgument(argparse.Action):
    """-o as a Path, remembering a trailing slash (which Path drops): `-o new-folder/` is a folder."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object, *_: object):
        setattr(namespace, self.dest, Path(str(value)))
        namespace.output_is_folder = str(value).endswith(("/", os.sep))


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """Everything after the engine options; None means: take it from the preset."""
    parser.add_argument(
        "-o", "--output", action=OutputArgument, help="a .mkv/.mp4 file for one input, else a folder (DIR/ or existing)"
    )
    parser.set_defaults(output_is_folder=False)
    parser.add_argument("--batch", type=int, default=1, help="frames per model call (GPU: 2-8 helps)")
    parser.add_argument("--codec", help="x265 (default), x264, svtav1, nvenc-hevc, nvenc-h264, nvenc-av1")
    parser.add_argument("--crf", type=float, help="constant quality (lower is better; preset default 16)")
    parser.add_argument("--speed", help="the encoder's own preset: medium, slow... (SVT-AV1: 0-13, NVENC: p1-p7)")
    parser.add_argument(
        "--pix-fmt", help="output pixel format (default: the preset's, yuv420p10le; with another --codec, that codec's)"
    )
    parser.add_argument("--segment-seconds", type=float, help="checkpoint every N seconds of video (default 30)")
    parser.add_argument("--workdir", type=Path, help="where segments go (default: a hidden folder beside the output)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the segments after success")
    parser.add_argument("--overwrite", action="store_true", help="replace an output that exists")
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


def video_settings(args: argparse.Namespace, preset: Preset) -> VideoSettings:
    from remaster.engine.upscaler import EngineSettings
    from remaster.video.encode import EncoderSettings
    from remaster.video.pipeline import VideoSettings

    defaults = preset.encoder
    encoder = EncoderSettings(
        codec=args.codec or defaults.codec,
        crf=args.crf if args.crf is not None else defaults.crf,
        speed=args.speed or (defaults.speed if (args.codec or defaults.codec) == defaults.codec else ""),
        pix_fmt=args.pix_fmt or (defaults.pix_fmt if (args.codec or defaults.codec) == defaults.codec else ""),
    ).resolved()
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: want 1 or more")
    return VideoSettings(
        preset=preset,
        model=args.model or preset.model,
        engine=EngineSettings(args.device, args.precision, args.tile, args.compile),
        encoder=encoder,
        batch=args.batch,
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


def plan_video_outputs(
    inputs: list[Path], output: Path | None, preset: str, output_is_folder: bool = False
) -> list[tuple[Path, Path]]:
    """Each input's output. One input: `-o FILE`, or beside it as `<stem>.<preset>.mkv`. Into a
    folder (`-o DIR` that exists or ends in `/`, or several inputs), `DIR/<stem>.<preset>.mkv`: the
    names `queue add` gives, and never an input's own name, even when DIR is the inputs' folder."""
    from remaster.queue.plan import output_path

    into_folder = output is not None and (output_is_folder or output.is_dir())
    if len(inputs) == 1 and not into_folder:
        if output is not None and not output.suffix:
            raise UsageError(f"{output}: the output must end in .mkv or .mp4, or be a folder: end it with /")
        return [(inputs[0], output or output_path(inputs[0], preset, None))]
    if output is not None and not into_folder and output.suffix.lower() in (".mkv", ".mp4"):
        raise UsageError(f"{output}: several inputs need an output folder, not a file")
    pairs = [(src, output_path(src, preset, output)) for src in inputs]
    sources = {src.resolve() for src in inputs}
    targets: set[Path] = set()
    for src, dst in pairs:
        if dst.resolve() in sources:
            raise UsageError(f"{dst}: the output for {src.name} is one of the inputs; choose another -o")
        if dst.resolve() in targets:
            raise UsageError(f"{dst}: two inputs would write it; remaster them into different folders")
        targets.add(dst.resolve())
    return pairs


def run_video_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from remaster.errors import Interrupted
    from remaster.video.pipeline import Remasterer, check_output, clean_finished_work
    from remaster.video.progress import JsonProgress, QuietProgress, RichProgress

    preset = get_preset(args.preset)
    settings = video_settings(args, preset)
    if args.json_progress:
        progress: QuietProgress = JsonProgress()
    elif args.quiet:
        progress = QuietProgress()
    else:
        progress = RichProgress()
    pairs = plan_video_outputs(args.inputs, args.output, preset.name, args.output_is_folder)
    for _, dst in pairs:  # before an output that exists is skipped or refused: its run may have been killed
        clean_finished_work(dst, args.workdir)
    target = None
    if args.target is not None:
        from remaster.export import default_output as export_output
        from remaster.export import export_video
        from remaster.targets import get_target

        target = get_target(args.target)
    elif args.burn_subs is not None:
        raise UsageError("--burn-subs goes with --target (burning subtitles in is part of an export)")
    if len(pairs) > 1 and args.workdir is not None:
        raise UsageError("--workdir names one work folder: give one input at a time with it")
    if len(pairs) > 1 and not settings.overwrite:
        # A season rerun after a crash: the episodes that were finished stay as they are.
        finished = [(src, dst) for src, dst in pairs if dst.exists()]
        for src, dst in finished:
            progress.note(f"{dst}: exists, skipped (--overwrite to remaster {src.name} again)")
        pairs = [pair for pair in pairs if pair not in finished]
    for src, dst in pairs:  # refuse before any work, not after the first episode
        check_output(src, dst, settings.overwrite)
    debug = getattr(args, "debug", False)
    failures: list[RemasterError] = []

    def failed(src: Path, exc: BaseException) -> None:
        """One input failed: one line naming it and the cause, and the batch goes on."""
        error = describe_failure(exc, src)
        if len(args.inputs) == 1:
            raise error from exc
        if debug:
            traceback.print_exception(exc)
        failures.append(error)
        print(f"remaster: error: {error}", file=sys.stderr)
        if args.json_progress:
            print(json.dumps({"event": "error", "input": str(src), "message": str(error)}), flush=True)

    if args.output is not None and pairs and pairs[0][1].parent == args.output:
        try:
            args.output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise describe_failure(exc) from exc
    remasterer = Remasterer(settings, progress)
    # Before any work: a missing input, or an output folder that is read-only or full, costs
    # that input alone, now rather than after hours of computing.
    runnable = []
    for src, dst in pairs:
        try:
            check_input(src)
            check_output_location(src, dst, args.workdir, room_check=_room_check(args))
        except RemasterError as exc:
            failed(src, exc)
        else:
            runnable.append((src, dst))
    for src, dst in runnable:
        try:
            if args.ray is not None:
                from remaster.cluster import remaster_on_ray

                _, workers = remaster_on_ray(
                    src, dst, settings, args.ray, args.ray_gpus, args.ray_shared_workdir, progress
                )
                progress.note(
                    f"{counted(len(workers), 'segment')} computed by {counted(len(set(workers)), 'Ray worker')}"
                )
            else:
                remasterer.run(src, dst)
            if target is not None:
                exported = export_video(dst, target, export_output(dst, target), args.burn_subs, settings.overwrite)
                if not args.quiet and not args.json_progress:
                    Console(stderr=True).print(f"exported {exported.output} ({target.name})", highlight=False)
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one input: reported, and the next one runs
            failed(src, exc)
    if failures:
        Console(stderr=True).print(f"{len(pairs) - len(failures)} done, {len(failures)} failed", highlight=False)
    return batch_exit_code(failures)


def _room_check(args: argparse.Namespace) -> bool:
    """The room estimate is the whole input's size: it says nothing about a part (--start/--end)."""
    return not args.no_space_check and args.start is None and args.end is None

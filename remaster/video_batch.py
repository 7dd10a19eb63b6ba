"""`remaster video`: a batch of inputs, each remastered with the same settings; one input's failure
is reported and the rest still run. The options are read in `remaster.commands.video`."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.core.errors import RemasterError, UsageError, batch_exit_code, describe_failure
from remaster.core.outputs import check_input, check_output_location, export_output_path, video_output_path
from remaster.core.wording import counted

if TYPE_CHECKING:  # the pipeline pulls in torch: import it only when a video job runs
    from remaster.export.targets import Target
    from remaster.scaleout.devices import DeviceSpread
    from remaster.video.pipeline import Remasterer
    from remaster.video.plan import VideoSettings
    from remaster.video.progress import QuietProgress


@dataclass(frozen=True)
class VideoBatch:
    """What a run is asked for besides each job's settings: the inputs, where the outputs go, what is
    done after each job (an export, a Ray cluster) and how progress is shown."""

    inputs: list[Path]
    output: Path | None = None
    output_is_folder: bool = False  # `-o DIR/`: a folder even when it does not exist yet
    target: str | None = None
    burn_subs: str | None = None
    ray: str | None = None
    ray_gpus: float | None = None
    ray_shared_workdir: bool = False
    space_check: bool = True
    quiet: bool = False
    json_progress: bool = False
    debug: bool = False


def plan_video_outputs(
    inputs: list[Path], output: Path | None, preset: str, output_is_folder: bool = False
) -> list[tuple[Path, Path]]:
    """Each input's output. One input: `-o FILE`, or beside it as `<stem>.<preset>.mkv`. Into a
    folder (`-o DIR` that exists or ends in `/`, or several inputs), `DIR/<stem>.<preset>.mkv`: the
    names `queue add` gives, and never an input's own name, even when DIR is the inputs' folder."""
    into_folder = output is not None and (output_is_folder or output.is_dir())
    if len(inputs) == 1 and not into_folder:
        if output is not None and not output.suffix:
            raise UsageError(f"{output}: the output must end in .mkv or .mp4, or be a folder: end it with /")
        return [(inputs[0], output or video_output_path(inputs[0], preset, None))]
    if output is not None and not into_folder and output.suffix.lower() in (".mkv", ".mp4"):
        raise UsageError(f"{output}: several inputs need an output folder, not a file")
    pairs = [(src, video_output_path(src, preset, output)) for src in inputs]
    sources = {src.resolve() for src in inputs}
    targets: set[Path] = set()
    for src, dst in pairs:
        if dst.resolve() in sources:
            raise UsageError(f"{dst}: the output for {src.name} is one of the inputs; choose another -o")
        if dst.resolve() in targets:
            raise UsageError(f"{dst}: two inputs would write it; remaster them into different folders")
        targets.add(dst.resolve())
    return pairs


def run_videos(batch: VideoBatch, settings: VideoSettings) -> int:
    """Remaster every input of the batch; returns the exit code for the whole batch."""
    from remaster.core.errors import Interrupted
    from remaster.scaleout.devices import parse_devices
    from remaster.video.pipeline import Remasterer, clean_finished_work
    from remaster.video.plan import check_output

    progress = _progress_display(batch)
    spread = None if batch.ray is not None else parse_devices(settings.engine.device)
    pairs = plan_video_outputs(batch.inputs, batch.output, settings.preset.name, batch.output_is_folder)
    for _, dst in pairs:  # before an output that exists is skipped or refused: its run may have been killed
        clean_finished_work(dst, settings.workdir)
    target = _export_target(batch)
    if len(pairs) > 1 and settings.workdir is not None:
        raise UsageError("--workdir names one work folder: give one input at a time with it")
    positions = {dst: position for position, (_, dst) in enumerate(pairs, 1)}  # `episode 2/3`, skipped ones counted
    given = len(pairs)
    if len(pairs) > 1 and not settings.overwrite:
        pairs = _skip_finished(pairs, progress)
    skipped = given - len(pairs)
    for src, dst in pairs:  # refuse before any work, not after the first episode
        check_output(src, dst, settings.overwrite)
    failures: list[RemasterError] = []
    failed = partial(_report_failure, batch, failures)
    _make_output_folder(batch, pairs)
    remasterer = Remasterer(settings, progress)
    runnable = _runnable(pairs, batch, settings, failed)
    for src, dst in runnable:
        progress.episode(positions[dst], given)
        try:
            _remaster_one(src, dst, batch, settings, remasterer, spread, target)
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one input: reported, and the next one runs
            failed(src, exc)
        finally:
            progress.stop()  # its live line goes, whatever happened, before the next input or the error
    _say_counts(batch, progress, len(pairs) - len(failures), len(failures), skipped)
    return batch_exit_code(failures)


def _remaster_one(
    src: Path,
    dst: Path,
    batch: VideoBatch,
    settings: VideoSettings,
    remasterer: Remasterer,
    spread: DeviceSpread | None,
    target: Target | None,
) -> None:
    """One input of the batch: remastered here, on several devices or on a Ray cluster; then exported."""
    progress = remasterer.progress
    if batch.ray is not None:
        from remaster.scaleout.ray_cluster import remaster_on_ray

        _, workers = remaster_on_ray(src, dst, settings, batch.ray, batch.ray_gpus, batch.ray_shared_workdir, progress)
        progress.note(f"{counted(len(workers), 'segment')} computed by {counted(len(set(workers)), 'Ray worker')}")
    elif spread is not None:
        from remaster.scaleout.devices import remaster_on_devices

        _, workers = remaster_on_devices(src, dst, settings, spread, progress)
        on = f"{counted(len(set(workers)), 'worker')} on {spread.label}"
        progress.note(f"{counted(len(workers), 'segment')} computed by {on}")
    else:
        remasterer.run(src, dst)
    if target is not None:
        _export(dst, target, batch, settings.overwrite)


def _say_counts(batch: VideoBatch, progress: QuietProgress, done: int, failed: int, skipped: int) -> None:
    """The batch's last line, `3 done, 1 failed, 1 skipped`: on the terminal's live display, as a JSON
    event, and on stderr wherever something failed, --quiet and --json-progress included."""
    from remaster.video.progress import batch_line

    progress.batch_finished(done, failed, skipped)
    if failed and (batch.quiet or batch.json_progress):
        print(batch_line(done, failed, skipped), file=sys.stderr, flush=True)


def _progress_display(batch: VideoBatch) -> QuietProgress:
    """How the batch shows its progress: JSON lines, nothing but notes, or rich bars."""
    from remaster.video.progress import JsonProgress, QuietProgress, RichProgress

    if batch.json_progress:
        return JsonProgress()
    if batch.quiet:
        return QuietProgress()
    return RichProgress()


def _export_target(batch: VideoBatch) -> Target | None:
    """The target each output is exported to after it is made, if the batch asks for one."""
    if batch.target is not None:
        from remaster.export.targets import get_target

        return get_target(batch.target)
    if batch.burn_subs is not None:
        raise UsageError("--burn-subs goes with --target (burning subtitles in is part of an export)")
    return None


def _skip_finished(pairs: list[tuple[Path, Path]], progress: QuietProgress) -> list[tuple[Path, Path]]:
    """The pairs whose output does not exist yet, each skipped one noted."""
    # A season rerun after a crash: the episodes that were finished stay as they are.
    finished = [(src, dst) for src, dst in pairs if dst.exists()]
    for src, dst in finished:
        progress.note(f"{dst}: exists, skipped (--overwrite to remaster {src.name} again)")
    return [pair for pair in pairs if pair not in finished]


def _report_failure(batch: VideoBatch, failures: list[RemasterError], src: Path, exc: BaseException) -> None:
    """One input failed: one line naming it and the cause, added to `failures`, and the batch goes on.
    A batch of one input has nothing to go on with: the failure is raised."""
    error = describe_failure(exc, src)
    if len(batch.inputs) == 1:
        raise error from exc
    if batch.debug:
        traceback.print_exception(exc)
    failures.append(error)
    print(f"remaster: error: {error}", file=sys.stderr)
    if batch.json_progress:
        print(json.dumps({"event": "error", "input": str(src), "message": str(error)}), flush=True)


def _make_output_folder(batch: VideoBatch, pairs: list[tuple[Path, Path]]) -> None:
    """Create the `-o` folder the outputs go into, if they go into one."""
    if batch.output is not None and pairs and pairs[0][1].parent == batch.output:
        try:
            batch.output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise describe_failure(exc) from exc


def _runnable(
    pairs: list[tuple[Path, Path]],
    batch: VideoBatch,
    settings: VideoSettings,
    failed: Callable[[Path, Exception], None],
) -> list[tuple[Path, Path]]:
    """The pairs that can be remastered; the others are reported as failed."""
    # Before any work: a missing input, or an output folder that is read-only or full, costs
    # that input alone, now rather than after hours of computing.
    runnable = []
    for src, dst in pairs:
        try:
            check_input(src)
            check_output_location(src, dst, settings.workdir, room_check=_room_check(batch, settings))
        except RemasterError as exc:
            failed(src, exc)
        else:
            runnable.append((src, dst))
    return runnable


def _export(dst: Path, target: Target, batch: VideoBatch, overwrite: bool) -> None:
    """Export a finished output to the target, and say where it went unless the batch is quiet."""
    from rich.console import Console

    from remaster.export.job import export_video

    exported_path = export_output_path(dst, target.name, target.suffix)
    exported = export_video(dst, target, exported_path, batch.burn_subs, overwrite)
    if not batch.quiet and not batch.json_progress:
        Console(stderr=True).print(f"exported {exported.output} ({target.name})", highlight=False)


def _room_check(batch: VideoBatch, settings: VideoSettings) -> bool:
    """The room estimate is the whole input's size: it says nothing about a part (--start/--end)."""
    return batch.space_check and settings.start is None and settings.end is None

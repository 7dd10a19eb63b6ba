"""`remaster image`: pictures in, upscaled pictures out; one bad file does not stop the rest."""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from remaster.core.errors import RemasterError, UsageError, describe_failure
from remaster.core.outputs import image_output_path, refuse_to_destroy
from remaster.core.presets import get_preset
from remaster.engines.settings import EngineSettings
from remaster.image.engines import PictureEngines
from remaster.media.imagefiles import INPUT_SUFFIXES, OUTPUT_FORMATS, read_image, write_image


@dataclass
class ImageReport:
    done: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # one-line reasons, each naming its file
    errors: list[RemasterError] = field(default_factory=list)  # the same failures, for the exit code
    seconds: float = 0.0


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the pictures in them (by suffix, sorted)."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES and p.is_file()))
        else:
            files.append(path)
    if not files:
        raise UsageError(f"no pictures ({', '.join(INPUT_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return files


def plan_outputs(
    inputs: list[Path], files: list[Path], output: Path | None, preset: str, overwrite: bool
) -> list[tuple[Path, Path]]:
    """Pair each input with its output path, refusing anything that would destroy a file.

    One file and an output with a picture suffix: that file. Otherwise the output is a
    folder and every picture keeps its name (with .png). No output: beside each input,
    as NAME.PRESET.png.
    """
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    to_file = single_file and output is not None and output.suffix.lower() in OUTPUT_FORMATS and not output.is_dir()
    pairs = [(src, output if to_file else image_output_path(src, preset, output)) for src in files]
    sources = {src.resolve() for src in files}
    targets: set[Path] = set()
    for src, dst in pairs:
        resolved = dst.resolve()
        if resolved in sources:  # any input, not only its own: a.jpg and a.png into their own folder
            raise UsageError(f"{dst}: output would overwrite an input; choose another -o")
        if resolved in targets:
            raise UsageError(f"{dst}: two inputs would write this same output")
        targets.add(resolved)
        refuse_to_destroy(src, dst, overwrite)
    return pairs


def run_image_command(
    inputs: list[Path],
    output: Path | None,
    preset_name: str,
    settings: EngineSettings,
    overwrite: bool = False,
    model_override: str | None = None,
    console: Console | None = None,
    max_pixels: int | None = None,
) -> ImageReport:
    console = console or Console(stderr=True, soft_wrap=True)
    preset = get_preset(preset_name)
    files = expand_inputs(inputs)
    pairs = plan_outputs(inputs, files, output, preset.name, overwrite)
    engines = PictureEngines(model_override or preset.model, settings)
    if output is not None and pairs[0][1] != output:  # a folder of outputs
        output.mkdir(parents=True, exist_ok=True)
    report = ImageReport()
    start = time.perf_counter()
    # PNG's deflate is slow (960x720 RGB: 150 ms, about a GPU's time for ten such frames).
    # Writer threads do it while the model works on the next picture; Pillow lets go of the
    # GIL while it compresses. A CPU model already keeps every core busy, so there one
    # writer only keeps the order of work. At most `writers + 1` results wait, bounding memory.
    writers = (os.cpu_count() or 1) if engines.on_gpu else 1
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="remaster-write") as writer:
        in_flight: deque[tuple[Path, Path, Future[None]]] = deque()
        for src, dst in pairs:
            try:
                picture = read_image(src, max_pixels)
            except Exception as exc:  # noqa: BLE001 - a damaged or unreadable file: it fails, the rest go on
                _failed(report, console, describe_failure(exc, src))
                continue
            height, width = picture.shape[:2]
            upscaler = engines.for_size(height, width)  # a model that cannot load stops the command here
            try:
                upscaled = upscaler.upscale(picture[None])[0]
            except Exception as exc:  # noqa: BLE001 - out of memory, a bug: this picture fails, the rest go on
                _failed(report, console, describe_failure(exc, src))
                continue
            engines.ran(height, width)
            in_flight.append((src, dst, writer.submit(write_image, dst, upscaled)))
            while len(in_flight) > writers:
                _finish_write(report, console, *in_flight.popleft())
        while in_flight:
            _finish_write(report, console, *in_flight.popleft())
    report.seconds = time.perf_counter() - start
    console.print(
        f"{len(report.done)} upscaled, {len(report.failed)} failed, {report.seconds:.1f} s ({engines.label})",
        highlight=False,
    )
    return report


def _failed(report: ImageReport, console: Console, exc: RemasterError) -> None:
    report.failed.append(str(exc))
    report.errors.append(exc)
    console.print(f"[red]error:[/red] {exc}", highlight=False)


def _finish_write(report: ImageReport, console: Console, src: Path, dst: Path, written: Future[None]) -> None:
    try:
        written.result()
    except Exception as exc:  # noqa: BLE001 - a full disk, a read-only folder: this picture fails, the rest go on
        _failed(report, console, describe_failure(exc, src))
        return
    report.done.append(dst)
    console.print(f"{src} -> {dst}", highlight=False)

"""The one place remaster starts ffmpeg: the binary of imageio-ffmpeg (no system ffmpeg needed),
a command built with ffmpeg-python, the child tied to remaster's life, its log kept for the error.

Every run gets the same global options, before the inputs (ffmpeg 9 rejects global options after
the output, which is where ffmpeg-python's own `global_args()` puts them, so they go into the
command that `ffmpeg.compile(..., cmd=...)` starts with): no stdin, no banner, the log at the
caller's level with level tags (`[error]`, so the cause can be picked out of an info-level log),
no stats line, overwrite (callers write to names of their own, never to the user's file).

A command is an ffmpeg-python output stream. What ffmpeg-python cannot express is passed as
documented raw arguments, never spliced into a compiled command line by the caller:

* `global_args`: global options such as `-copyts`, placed with the fixed ones before the inputs;
* `output_args`: output options that ffmpeg-python's keyword arguments cannot write because they
  repeat (`-metadata:s:v:0 a=1 -metadata:s:v:0 b=2`, `-attach`), placed before the output's name;
* a plain list of arguments (inputs, maps, output) instead of a stream, for commands written as
  ffmpeg's own command lines (export's filter graphs, the demo's sample muxer).
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import ffmpeg
import imageio_ffmpeg

from remaster.core.errors import RemasterError
from remaster.core.processes import dying_with_this_process

# "[libx264 @ 0x55...] [error] " or "[error] ": what -loglevel level+... puts before a message.
_LOG_PREFIX = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\] |\[(error|fatal)\] ")
_ERROR_TAGS = ("[error]", "[fatal]")


class FFmpegError(RemasterError):
    """ffmpeg ended with an error: one line naming the file and ffmpeg's own reason."""


@dataclass(frozen=True)
class FFmpegProgress:
    """One report of `-progress`: how far ffmpeg is. None where it did not know yet (N/A)."""

    out_time: float | None  # seconds of output written
    frame: int | None  # video frames written


def ffmpeg_exe() -> str:
    """The ffmpeg binary remaster runs: imageio-ffmpeg's (a pinned build with zscale and libass)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_command(
    command: ffmpeg.nodes.OutputStream | Sequence[str],
    loglevel: str = "error",
    global_args: Sequence[str] = (),
    output_args: Sequence[str] = (),
    progress: bool = False,
    metadata_input: Path | None = None,
) -> list[str]:
    """The full command line `run_ffmpeg` starts (see the module's docstring for the arguments)."""
    head = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", f"level+{loglevel}", "-nostats", "-y"]
    head += ["-progress", "pipe:1"] if progress else []
    head += list(global_args)
    if isinstance(command, ffmpeg.nodes.OutputStream):
        args = ffmpeg.compile(command, cmd=head)
        name = command.node.kwargs["filename"]
    else:
        args, name = head + list(command), command[-1]
    if output_args:
        # Output options go just before the output's name, which ends a single output's arguments
        # (ffmpeg-python adds -y after it only when asked, and it is not asked).
        if args[-1] != name:
            raise ValueError(f"one output expected, its name last: {args}")
        args[-1:-1] = output_args
    return args if metadata_input is None else _with_metadata_input(args, metadata_input)


def _with_metadata_input(args: list[str], metadata: Path) -> list[str]:
    """ffmpeg arguments (as ffmpeg.get_args gives them) with `metadata` as one more input, the last,
    and the chapters and global tags taken from it."""
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    after_inputs = inputs[-1] + 2
    args = [*args[:after_inputs], "-i", str(metadata), *args[after_inputs:]]
    for option in ("-map_chapters", "-map_metadata"):
        args[args.index(option) + 1] = str(len(inputs))
    return args


def run_ffmpeg(
    command: ffmpeg.nodes.OutputStream | Sequence[str],
    file: Path | str,
    doing: str,
    *,
    loglevel: str = "error",
    global_args: Sequence[str] = (),
    output_args: Sequence[str] = (),
    progress: Callable[[FFmpegProgress], None] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    metadata_input: Path | None = None,
) -> str:
    """Run ffmpeg to the end and return its log; raise FFmpegError, one line, if it fails:
    "`file`: ffmpeg failed while `doing`: its first and last error lines" (error_cause).

    `file` is the file the user knows the run by (the input being muxed, the sample being made).
    `progress` gets ffmpeg's `-progress` reports as they come. `log` keeps ffmpeg's log in a file
    of the caller's (else a temporary file: an info-level log of a long encode is large). `cwd`,
    `env` and `pass_fds` are Popen's: export runs ffmpeg in its work folder, with its locks.
    `metadata_input`: an ffmetadata file added as the last input, the output's chapters and global
    tags taken from it (`-map_chapters`/`-map_metadata` in `command` pointed at it).

    The child dies with remaster (the kernel's SIGKILL, however remaster dies), and is killed when
    this call is left early (Ctrl-C, SIGTERM turned into an exception): nothing it writes is of
    use then, and the caller removes its partial file only once ffmpeg no longer writes it.
    """
    args = ffmpeg_command(command, loglevel, global_args, output_args, progress is not None, metadata_input)
    # ffmpeg logs bytes (file and font names as the system has them): read back, never refused.
    text_mode = {"mode": "w+", "encoding": "utf-8", "errors": "replace"}
    with (log.open(**text_mode) if log is not None else tempfile.TemporaryFile(**text_mode)) as log_file:
        returncode = _run(args, log_file, progress, cwd, env, pass_fds)
        log_file.seek(0)
        text = log_file.read()
    if returncode < 0:  # killed by a signal: it wrote no error of its own
        raise FFmpegError(f"{file}: ffmpeg failed while {doing}: {signal_cause(-returncode)}")
    if returncode != 0:
        raise FFmpegError(f"{file}: ffmpeg failed while {doing}: {error_cause(text)}")
    return text


def signal_cause(number: int) -> str:
    """What killed ffmpeg, in words: above all SIGXFSZ, which the kernel sends a process that writes
    past its file size limit (`ulimit -f`, RLIMIT_FSIZE), and whose default action ends it silently."""
    if number == signal.SIGXFSZ:
        return (
            "it wrote past the file size limit (`ulimit -f`, RLIMIT_FSIZE) and was stopped (SIGXFSZ): "
            "raise the limit or write elsewhere, and run again to resume"
        )
    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


def _run(
    args: list[str],
    log_file: IO[str],
    progress: Callable[[FFmpegProgress], None] | None,
    cwd: Path | None,
    env: Mapping[str, str] | None,
    pass_fds: Sequence[int],
) -> int:
    process = subprocess.Popen(
        dying_with_this_process(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if progress else subprocess.DEVNULL,
        stderr=log_file,
        text=True,
        errors="replace",
        pass_fds=tuple(pass_fds),
    )
    try:
        if progress is not None:
            _read_progress(process.stdout, progress)
        return process.wait()
    finally:
        if process.poll() is None:  # left early: stop ffmpeg before the caller removes what it wrote
            process.kill()
            process.wait()


def _read_progress(lines: IO[str], progress: Callable[[FFmpegProgress], None]) -> None:
    """Call `progress` at the end of each block of `-progress` lines ("progress=continue|end")."""
    block: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key != "progress":
            block[key] = value
            continue
        # out_time_us is in microseconds (out_time_ms is too, despite its name); N/A before the first packet.
        micros, frame = block.get("out_time_us", ""), block.get("frame", "")
        out_time = int(micros) / 1e6 if micros.lstrip("-").isdigit() else None
        progress(FFmpegProgress(out_time, int(frame) if frame.isdigit() else None))
        block = {}


def error_cause(log: str) -> str:
    """ffmpeg's reason for failing, one line, from a log written with level tags: its first error
    line (the cause as ffmpeg met it: "Unknown encoder 'x'", "No space left on device") and its last
    (its own summary: "Error opening output files: Encoder not found"); the ones between are mostly
    its threads winding down. Its last line if it tagged none as an error."""
    lines = log.strip().splitlines()
    errors = [_LOG_PREFIX.sub("", line) for line in lines if any(tag in line for tag in _ERROR_TAGS)]
    if not errors:
        return lines[-1] if lines else "no message"
    return " | ".join(dict.fromkeys([errors[0], errors[-1]]))


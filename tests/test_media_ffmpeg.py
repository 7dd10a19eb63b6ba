"""remaster.media.ffmpeg: the one ffmpeg runner, on real ffmpeg runs; and that it is the only one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import av
import ffmpeg
import pytest

from remaster.media.ffmpeg import FFmpegError, FFmpegProgress, run_ffmpeg

PACKAGE = Path(__file__).resolve().parent.parent / "remaster"
RUNNER = PACKAGE / "media" / "ffmpeg.py"
# Modules that may start processes other than ffmpeg: the queue starts `remaster` children.
OTHER_PROCESSES = {PACKAGE / "scaleout" / "queue" / "child.py"}
_STARTERS = {
    "subprocess": {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execlp", "spawnv", "spawnvp"},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    # ffmpeg-python's own runners and command builders: a command line built outside the runner
    # would be started outside it too.
    "ffmpeg": {"run", "run_async", "compile", "get_args"},
}


def _lavfi_clip(seconds: float, **input_options: object) -> ffmpeg.nodes.FilterableStream:
    """A test pattern from ffmpeg's lavfi source: 64x48 at 24 fps, small and quick to encode."""
    return ffmpeg.input(f"testsrc2=s=64x48:r=24:d={seconds}", f="lavfi", **input_options)


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_command_runs_and_writes_its_file(tmp_path: Path):
    out = tmp_path / "clip.mkv"
    log = run_ffmpeg(_lavfi_clip(1).output(str(out), vcodec="ffv1"), out, "testing")
    assert _frames(out) == 24
    assert "[error]" not in log


def test_a_failing_run_is_one_line_with_ffmpegs_reason(tmp_path: Path):
    bad = tmp_path / "damaged.mkv"
    bad.write_bytes(b"not a video\n" * 400)  # text: no container ffmpeg knows
    out = tmp_path / "out.mkv"
    with pytest.raises(FFmpegError, match="ffmpeg failed while testing: ") as caught:
        run_ffmpeg(ffmpeg.input(str(bad)).output(str(out), c="copy"), out, "testing")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{out}: ffmpeg failed while testing: ")
    # The first error is the demuxer's; ffmpeg's summary, the last, says what it made of it.
    assert message.endswith("Error opening input files: Invalid data found when processing input")
    assert "[error]" not in message  # the level tags are taken off
    assert not out.exists()


def test_progress_reports_increasing_times(tmp_path: Path):
    out = tmp_path / "clip.mkv"
    reports: list[FFmpegProgress] = []
    # -re reads the 1.5 s clip in real time and -stats_period 0.1 reports every 0.1 s, so there are
    # several reports before the last (at the default 0.5 s a 1.5 s run gives about three).
    command = _lavfi_clip(1.5, re=None).output(str(out), vcodec="ffv1")
    run_ffmpeg(command, out, "testing", global_args=["-stats_period", "0.1"], progress=reports.append)
    times = [r.out_time for r in reports if r.out_time is not None]
    frames = [r.frame for r in reports if r.frame is not None]
    assert len(times) >= 4, reports
    assert times == sorted(times) and times[0] < times[-1]
    assert times[-1] == pytest.approx(1.5, abs=0.1)
    assert frames == sorted(frames) and frames[-1] == 36


def _processes_writing(name: str) -> list[int]:
    """Pids whose command line names `name` (the test's own unique output file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if name in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds ffmpeg through /proc (Linux)")
def test_an_interrupt_stops_ffmpeg(tmp_path: Path):
    out = tmp_path / "interrupted-clip.mkv"
    seen: list[int] = []

    def interrupt(report: FFmpegProgress) -> None:
        seen.extend(_processes_writing(out.name))  # ffmpeg is running now
        raise KeyboardInterrupt("Ctrl-C in the report reader")  # what Ctrl-C raises in the thread reading the reports

    # 60 s read in real time: still running when the first report comes.
    command = _lavfi_clip(60, re=None).output(str(out), vcodec="ffv1")
    with pytest.raises(KeyboardInterrupt, match="^Ctrl-C in the report reader$"):
        run_ffmpeg(command, out, "testing", progress=interrupt)
    assert seen, "ffmpeg was not found running"
    # The runner has waited for it: it is gone (not even a zombie) when run_ffmpeg returns.
    assert not any(Path(f"/proc/{pid}").exists() for pid in seen)


def _starts_processes(tree: ast.AST) -> list[str]:
    """Calls in `tree` that start a process or build an ffmpeg command line: module.function(...)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in _STARTERS:
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name in _STARTERS[node.module]]
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] == "imageio_ffmpeg"]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and node.func.attr in _STARTERS.get(owner.id, ()):
                found.append(f"{owner.id}.{node.func.attr}() at line {node.lineno}")
            elif node.func.attr == "run_async":  # ffmpeg-python's method on a stream
                found.append(f".run_async() at line {node.lineno}")
    return found


def test_only_the_runner_starts_ffmpeg():
    """Every ffmpeg remaster runs goes through remaster/media/ffmpeg.py: the only module that starts
    processes (besides the queue's `remaster` children) or touches the ffmpeg binary."""
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == RUNNER:
            continue
        found = _starts_processes(ast.parse(path.read_text(), str(path)))
        if path in OTHER_PROCESSES:
            found = [f for f in found if "imageio_ffmpeg" in f or f.startswith("ffmpeg.")]
        if found:
            offenders[str(path.relative_to(PACKAGE.parent))] = found
    assert offenders == {}
    assert _starts_processes(ast.parse(RUNNER.read_text())), "the check finds nothing even in the runner"


# Runs ffmpeg through the runner in a child whose file size limit is FSIZE bytes (as `ulimit -f`
# sets it): ffmpeg inherits the limit, and the kernel stops it with SIGXFSZ when it writes past it.
_UNDER_FSIZE_LIMIT = """
import resource, sys
from pathlib import Path
import ffmpeg
from remaster.media.ffmpeg import FFmpegError, run_ffmpeg
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
out = Path(sys.argv[1])
clip = ffmpeg.input("testsrc2=s=320x240:r=24:d=2", f="lavfi").output(str(out), vcodec="ffv1")
try:
    run_ffmpeg(clip, out, "muxing")
except FFmpegError as exc:
    print(exc)
"""


def test_a_run_stopped_by_the_file_size_limit_says_so(tmp_path: Path):
    out = tmp_path / "big.mkv"
    run = subprocess.run([sys.executable, "-c", _UNDER_FSIZE_LIMIT, str(out), "65536"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size == 65536  # it did reach the limit (2 s of FFV1 are megabytes)
    assert run.stdout.strip() == (
        f"{out}: ffmpeg failed while muxing: it wrote past the file size limit (`ulimit -f`, RLIMIT_FSIZE) and was "
        "stopped (SIGXFSZ): raise the limit or write elsewhere, and run again to resume"
    ), run.stdout

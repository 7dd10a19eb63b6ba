"""Issue 12, case 1 and the work folder half of case 6: remaster deletes nothing it did not make.

A `--workdir` that holds anything of the user's is refused before anything is written into it; an
empty one is emptied of remaster's files after success and kept; and a run killed (SIGKILL, for
real, at the moment chosen by an audit hook) after its output appeared leaves a work folder that
the next run for that output removes.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from remaster.cli import main
from remaster.demo.samples import EpisodeSpec, make_episode

pytestmark = pytest.mark.slow

SPEC = EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25, cover_image=False)
FAST = ["--segment-seconds", "0.25", "--codec", "x264"]  # 4 segments of 6 frames
OPTIONS = [*FAST, "--quiet"]

# Runs remaster in this child and SIGKILLs it at the KILL_AT-th audit EVENT (os.remove, os.rename...)
# that names PATH (any, if PATH is empty) once OUTPUT exists: a real kill at an exact point of the run.
_KILLER = """
import os, signal, sys
from pathlib import Path
event, path, output, kill_at = sys.argv[1:5]
seen = 0
def hook(name, args):
    global seen
    if name == event and Path(output).exists() and (not path or path in map(str, args)):
        seen += 1
        if seen == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
sys.argv[1:5] = []
sys.addaudithook(hook)
from remaster.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    return make_episode(tmp_path_factory.mktemp("src") / "episode.mkv", SPEC)


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` and the sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _killed_run(source: Path, output: Path, event: str, path: str, kill_at: int, *extra: str) -> int:
    command = [sys.executable, "-c", _KILLER, event, path, str(output), str(kill_at), str(source), "-o", str(output)]
    return subprocess.run([*command, *OPTIONS, *extra], capture_output=True, timeout=300).returncode


def test_workdir_holding_user_files_is_refused_and_left_as_it_was(episode, tmp_path, capsys):
    project = tmp_path / "proj"
    project.mkdir()
    source = project / "ep.mkv"  # the input lives in the folder given as --workdir
    shutil.copy(episode, source)
    (project / "notes.txt").write_text("mine")
    before = _snapshot(project)
    assert main([str(source), "-o", str(project / "out.mkv"), "--workdir", str(project), *OPTIONS]) == 2
    err = capsys.readouterr().err
    assert f"{project}: not a remaster work folder: it holds ep.mkv, notes.txt" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(project) == before  # not even a lock file was added
    assert sorted(os.listdir(project)) == ["ep.mkv", "notes.txt"]


def test_empty_workdir_is_kept_and_one_remaster_made_is_removed(episode, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main([str(episode), "-o", str(tmp_path / "a.mkv"), "--workdir", str(mine), *OPTIONS]) == 0
    assert mine.is_dir() and not list(mine.iterdir())  # the user's folder: emptied of remaster's files, kept
    made = tmp_path / "new" / "work"  # neither exists: remaster makes both, and marks the one it works in
    assert main([str(episode), "-o", str(tmp_path / "b.mkv"), "--workdir", str(made), *OPTIONS]) == 0
    assert not made.exists()
    assert (tmp_path / "new").is_dir()  # the parent made on the way is not a work folder: left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv", "b.mkv", "mine", "new"]


def test_kept_workdir_resumes_but_not_once_a_user_file_is_in_it(episode, tmp_path, capsys):
    work = tmp_path / "work"
    base = [str(episode), "-o", str(tmp_path / "out.mkv"), "--workdir", str(work), *FAST]
    assert main([*base, "--keep-workdir", "--quiet"]) == 0
    kept = sorted(p.name for p in work.iterdir())
    assert "remaster-workdir.json" in kept and any(name.startswith("segment-") for name in kept)
    (work / "todo.txt").write_text("mine")
    assert main([*base, "--overwrite", "--quiet"]) == 2
    assert "it holds todo.txt" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == sorted([*kept, "todo.txt"])
    (work / "todo.txt").unlink()
    assert main([*base, "--overwrite", "--json-progress"]) == 0
    assert '"reused": [0, 1, 2, 3]' in capsys.readouterr().out.replace("\n", "")
    assert not work.exists()  # remaster made it in the first run


# The removals after the output appeared: the staged file's name (gone already), then the work
# folder's 4 segments and video.mkv (by name), the manifest, the lock and the marker. Killed before the k-th,
# the folder holds what is listed.
LEFT_AT_KILL = {
    1: ["lock", "manifest.json", "remaster-workdir.json", "segment-*", "video.mkv"],  # all of it
    4: ["lock", "manifest.json", "remaster-workdir.json", "segment-*", "video.mkv"],  # 2 of the 4 segments
    7: ["lock", "manifest.json", "remaster-workdir.json"],
    8: ["lock", "remaster-workdir.json"],  # no manifest any more
    9: ["remaster-workdir.json"],
}


@pytest.mark.parametrize("kill_at", sorted(LEFT_AT_KILL))
def test_kill_while_removing_the_work_folder_then_next_run_removes_it(episode, tmp_path, kill_at, capsys):
    """SIGKILL at a file removal after the output appeared leaves a full, half-removed or almost
    empty work folder; the next run for that output (refused: the output exists) removes it."""
    output = tmp_path / "out.mkv"
    workdir = tmp_path / ".out.mkv.remaster"
    assert _killed_run(episode, output, "os.remove", "", kill_at) == -9
    assert output.is_file()
    left = sorted({"segment-*" if p.name.startswith("segment-") else p.name for p in workdir.iterdir()})
    assert left == LEFT_AT_KILL[kill_at]
    finished = output.read_bytes()
    assert main([str(episode), "-o", str(output), *OPTIONS]) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err
    assert not workdir.exists()
    assert output.read_bytes() == finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_kill_before_an_overwritten_output_is_replaced_keeps_the_segments(episode, tmp_path, capsys):
    """With --overwrite the old output exists while the new one is staged: a kill just before the
    rename leaves the old file, and its work folder is not that output's, so it stays for a resume."""
    output = tmp_path / "out.mkv"
    workdir = tmp_path / ".out.mkv.remaster"
    output.write_bytes(b"an older output")
    assert _killed_run(episode, output, "os.rename", str(output), 1, "--overwrite") == -9
    assert output.read_bytes() == b"an older output"
    assert main([str(episode), "-o", str(output), *OPTIONS]) == 2
    capsys.readouterr()
    assert workdir.is_dir() and list(workdir.glob("segment-*.mkv"))
    assert main([str(episode), "-o", str(output), *FAST, "--overwrite", "--json-progress"]) == 0
    assert '"reused": [0, 1, 2, 3]' in capsys.readouterr().out.replace("\n", "")
    assert not workdir.exists()


def test_a_legal_249_byte_output_name_works(tmp_path):
    # ".NAME.remaster", the work folder's name, is 259 bytes for a 249-byte NAME: more than a file
    # name may be (NAME_MAX, 255). It is cut short, with a hash of the whole name.
    source = make_episode(tmp_path / "ep.mkv", SPEC)
    output = tmp_path / ("e" * 245 + ".mkv")
    assert len(output.name.encode()) == 249
    assert main([str(source), "-o", str(output), *OPTIONS]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ep.mkv", output.name])  # no work folder left


def test_a_mux_stopped_by_the_file_size_limit_names_it(tmp_path):
    # A real RLIMIT_FSIZE (`ulimit -f`) between the size of the joined video and that of the output:
    # the mux, the one step over it, is stopped by the kernel (SIGXFSZ) and used to say "no message".
    source = make_episode(tmp_path / "ep.mkv", SPEC)
    output = tmp_path / "out.mkv"
    assert main([str(source), "-o", str(output), *OPTIONS, "--keep-workdir"]) == 0
    joined, whole = (tmp_path / ".out.mkv.remaster" / "video.mkv").stat().st_size, output.stat().st_size
    assert joined < whole
    output.unlink()
    limit = (joined + whole) // 2

    def under_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "remaster", str(source), "-o", str(output), *OPTIONS]
    run = subprocess.run(command, capture_output=True, text=True, preexec_fn=under_limit)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"remaster: error: {source}: ffmpeg failed while muxing: it wrote past the file size limit (`ulimit -f`, "
        "RLIMIT_FSIZE) and was stopped (SIGXFSZ): raise the limit or write elsewhere, and run again to resume"
    )
    assert not output.exists()

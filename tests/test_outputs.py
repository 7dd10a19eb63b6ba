"""core/outputs.py: the one way a finished file is put in place (atomic_output, commit_file), and the one
output rule (refuse_to_destroy) in every command that writes a file. Faults are real: an exception
raised halfway through a write, a full tmpfs."""

from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest
from mounts import tmpfs
from PIL import Image
from test_queue_integrity import make_queue

from remaster.cli import main
from remaster.compare.grid import compare
from remaster.core.errors import UsageError
from remaster.core.outputs import atomic_output
from remaster.image.batch import plan_outputs
from remaster.media.testcard import anime_frame

PACKAGE = Path(__file__).resolve().parent.parent / "remaster"

# Renames outside core/outputs.py, each with its reason. scaleout/tasks.py moves a segment file that a Ray
# task or a device worker finished into the work folder, then to its staging name; the durable
# commit (fsync, rename, fsync of the folder) is WorkDir.commit right after, through
# outputs.commit_file: these moves write nothing new.
OS_REPLACE_ALLOWED = {"scaleout/tasks.py": 2}


def _fill(folder: Path) -> None:
    """Take every free block, unbuffered (a buffered file would fail again on close)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _mid_write_failure(staged: Path) -> None:
    with staged.open("wb") as f:
        f.write(b"new, half")
    raise RuntimeError("the writer failed halfway")


def test_an_exception_mid_write_leaves_the_target_as_it_was(tmp_path: Path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"the user's file")
    with pytest.raises(RuntimeError, match="halfway"), atomic_output(target) as staged:
        _mid_write_failure(staged)
    assert target.read_bytes() == b"the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # the staged part is gone too


@pytest.mark.mounts
def test_a_full_filesystem_leaves_the_target_as_it_was(tmp_path: Path):
    with tmpfs(tmp_path / "small", "256k") as folder:
        target = folder / "out.bin"
        target.write_bytes(b"the user's file")
        with pytest.raises(OSError, match="No space left on device") as caught, atomic_output(target) as staged:
            staged.write_bytes(b"\0" * (1 << 20))  # 1 MiB: more than the 256 KiB filesystem holds
        assert caught.value.errno == errno.ENOSPC
        assert target.read_bytes() == b"the user's file"
        assert sorted(p.name for p in folder.iterdir()) == ["out.bin"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_output_gets_0666_less_the_umask(tmp_path: Path, umask: int, mode: int):
    old = os.umask(umask)
    try:
        with atomic_output(tmp_path / "out.txt") as staged:
            staged.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == mode


def test_the_target_is_replaced_in_one_step(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    held = target.open()  # a reader that opened the old file keeps reading it whole
    before = target.stat().st_ino
    with atomic_output(target) as staged:
        staged.write_text("new")
        assert target.read_text() == "old"  # until the body returns, the target is the old file
    assert target.read_text() == "new"
    assert target.stat().st_ino != before  # a rename of another file, not a rewrite of this one
    assert held.read() == "old"
    held.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_without_replace_an_existing_file_is_never_replaced(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("the user's")
    with pytest.raises(FileExistsError, match="File exists"), atomic_output(target, replace=False) as staged:
        staged.write_text("new")
    assert target.read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    fresh = tmp_path / "fresh.txt"
    with atomic_output(fresh, replace=False) as staged:
        staged.write_text("new")
    assert fresh.read_text() == "new"


@pytest.mark.mounts
def test_queue_export_to_a_full_disk_leaves_no_part(tmp_path: Path, capsys):
    queue = tmp_path / "queue.db"
    make_queue(queue)
    with tmpfs(tmp_path / "small", "64k") as folder:
        _fill(folder)
        saved = folder / "jobs.json"
        assert main(["queue", "export", str(saved), "--queue", str(queue)]) == 2
        assert "No space left on device" in capsys.readouterr().err
        assert sorted(p.name for p in folder.iterdir()) == ["filler"]  # before: an empty jobs.json


def test_no_module_renames_files_but_outputs(tmp_path: Path):
    """os.replace outside core/outputs.py would be a write that skips the fsyncs and the cleanup."""
    found: dict[str, int] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("replace", "rename")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                name = path.relative_to(PACKAGE).as_posix()
                found[name] = found.get(name, 0) + 1
    found.pop("core/outputs.py")
    assert found == OS_REPLACE_ALLOWED


def test_every_command_refuses_a_folder_as_its_output(tmp_path: Path):
    """The one rule in compare and image, which wrote their own: a folder named as the output is
    refused in one line, also with --overwrite (before: a traceback from the rename)."""
    picture = tmp_path / "frame.png"
    Image.fromarray(anime_frame(48, 64, seed=3)).save(picture)
    grid = tmp_path / "grid.png"
    grid.mkdir()
    with pytest.raises(UsageError, match="grid.png: is a folder"):
        compare(picture, grid, presets=("2x-conservative",), overwrite=True)
    beside = tmp_path / "frame.2x-conservative.png"
    beside.mkdir()
    with pytest.raises(UsageError, match="frame.2x-conservative.png: is a folder"):
        plan_outputs([picture], [picture], None, "2x-conservative", overwrite=True)
    assert not any(grid.iterdir()) and not any(beside.iterdir())

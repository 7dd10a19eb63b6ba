"""The one rule for every file remaster writes: never destroy the input or a file the user has;
the checks, before any work, that the inputs can be read and the outputs' folders written; each
command's default output name; and the one way a finished file is put in place (atomic_output,
commit_file): written beside its target under a temporary name, made durable, renamed over it.

Default output names, one rule per command (a folder given with -o takes the same name):
- video, queue add: `<stem>.<preset>.mkv` (video_output_path)
- image: `<stem>.<preset>.png` beside the input; in a folder `<stem>.png`, so that a folder of
  frames comes out with the frames' own names (image_output_path)
- export: `<stem>.<target><target suffix>` (export_output_path)
- compare: `<stem>.compare[-<at>s].png` (compare_output_path)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from remaster.core.errors import ResourceError, UsageError, describe_failure

# The write test's size: one 4 KiB page, so that a filesystem with no free block fails it
# (creating an empty file only needs an inode, which a full filesystem may still have).
WRITE_TEST_BYTES = 4096


def refuse_to_destroy(source: Path, output: Path, overwrite: bool, overwrite_option: str = "--overwrite") -> None:
    """Raise a one-line UsageError if writing `output` would replace the input, a folder, or
    (without `overwrite`) any existing file. `overwrite_option` is how the user asks for it
    (the queue passes options to its runs after `--`)."""
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise UsageError(f"{output}: is the input; choose another output")
    if output.is_dir():
        raise UsageError(f"{output}: is a folder")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: exists; add {overwrite_option} to replace it")


def video_output_path(source: Path, preset: str, folder: Path | None) -> Path:
    """A video job's output when none is named: `<folder>/<stem>.<preset>.mkv`, or beside the source
    without a folder (the names of `remaster video` and `queue add` alike)."""
    name = f"{source.stem}.{preset}.mkv"
    return folder / name if folder is not None else source.with_name(name)


def image_output_path(source: Path, preset: str, folder: Path | None) -> Path:
    """A picture's output when no file is named: `<stem>.<preset>.png` beside the source; in a folder
    `<folder>/<stem>.png`, the frame's own name, so that numbered frames keep their numbers as they were."""
    return folder / f"{source.stem}.png" if folder is not None else source.with_name(f"{source.stem}.{preset}.png")


def export_output_path(source: Path, target: str, suffix: str) -> Path:
    """An export's output when none is named: `<stem>.<target><suffix>` beside the source."""
    return source.with_name(f"{source.stem}.{target}{suffix}")


def compare_output_path(source: Path, at: float | None) -> Path:
    """A comparison grid's output when none is named: `<stem>.compare.png`, or with the frame's
    time, `<stem>.compare-<at>s.png`, beside the source."""
    suffix = "" if at is None else f"-{at:g}s"
    return source.with_name(f"{source.stem}.compare{suffix}.png")


# The longest file name (in bytes) of Linux's filesystems (ext4, XFS, Btrfs: NAME_MAX) and macOS's APFS.
NAME_MAX = 255


def hidden_name(name: str, suffix: str) -> str:
    """`.NAME SUFFIX`, the name of a file or folder remaster keeps beside `name`; where that would be
    longer than a file name may be (an output name of 249 bytes is legal, its work folder's would
    not be), NAME cut short and a hash of the whole name after it, which keeps it one name's own."""
    whole = f".{name}{suffix}"
    if len(whole.encode(errors="surrogateescape")) <= NAME_MAX:
        return whole
    tag = "~" + hashlib.sha256(name.encode(errors="surrogateescape")).hexdigest()[:12]
    room = NAME_MAX - len(f".{tag}{suffix}".encode())
    cut = name.encode(errors="surrogateescape")[:room].decode(errors="ignore")  # not through a character
    return f".{cut}{tag}{suffix}"


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 4 MiB chunks: a segment or a timeline copy can be gigabytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or folder, so that a rename after it never names a file whose data is lost."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_output(target: Path, folder: Path | None = None, suffix: str = ".partial") -> tuple[int, Path]:
    """A new, empty temporary file for `target`: `.<name>.<pid>-<random><suffix>` in `folder`
    (default: beside the target, so that the rename stays on one filesystem), with the mode any
    tool's new file gets (0666 less the umask). Returns its open descriptor (the caller closes it)
    and its path. The pid in the name lets a later run tell a dead writer's leftover (export/job.py)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=suffix, dir=folder or target.parent)
    staged = Path(name)
    try:
        apply_umask_mode(staged)
    except BaseException:
        os.close(fd)
        staged.unlink(missing_ok=True)
        raise
    return fd, staged


def commit_file(staged: Path, target: Path, replace: bool = True) -> None:
    """Put a complete file in place: its data made durable, renamed over `target` in one step (a
    reader sees the old file or the new one, never a part), the folder made durable so that the
    new name survives a power cut. With `replace=False` an existing target is never replaced
    (FileExistsError, the staged file left for the caller): a hard link, which fails on an
    existing name, stands in for the rename."""
    fsync_path(staged)
    if replace:
        os.replace(staged, target)
    else:
        try:
            os.link(staged, target)
            staged.unlink()
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP):
                raise
            # A filesystem without hard links (FAT, exFAT): claim the name first, which fails on an
            # existing file, then rename over that empty file of our own.
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.replace(staged, target)
    fsync_path(target.parent)


@contextlib.contextmanager
def atomic_output(target: Path, suffix: str = ".partial", replace: bool = True) -> Iterator[Path]:
    """Write `target` whole or not at all: the body writes the yielded temporary path (see
    stage_output), which is committed over `target` when the body returns (commit_file) and removed
    if it raises, so that an error, a full disk or a kill never leaves a part at `target`."""
    fd, staged = stage_output(target, suffix=suffix)
    os.close(fd)
    try:
        yield staged
        commit_file(staged, target, replace)
    finally:
        staged.unlink(missing_ok=True)


def _current_umask() -> int:
    # os.umask() is read only by setting it, which for that moment changes it for every thread
    # (a file or a child process made then would get the wrong mode); Linux shows it in /proc.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # elsewhere: set a strict one for that moment, then put it back
    os.umask(umask)
    return umask


def apply_umask_mode(path: Path) -> None:
    """Give a file made by tempfile.mkstemp (always 0600) the mode any tool's new file gets:
    0666 less the umask (0644 under umask 022, 0664 under 002)."""
    path.chmod(0o666 & ~_current_umask())


def check_input(path: Path) -> None:
    """Raise a one-line UsageError naming the real reason `path` cannot be read as an input:
    no such file, a symlink loop, permission denied, a folder (Path.exists() says False to all
    of the first three alike)."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb"):  # the permission check that counts is the kernel's, on open
                pass
    except OSError as exc:
        raise describe_failure(exc, path) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path}: is a folder")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: not a file")


def human_size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _nearest_existing(folder: Path) -> Path:
    """The folder itself, or the nearest of its parents that exists: the run creates the rest there."""
    folder = folder.absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable(folder: Path) -> Path:
    """Write and remove a small file where `folder` will be, as the run will: a read-only or full
    filesystem, or a folder we may not write, raises OSError naming the folder. Returns the
    existing folder that was tested."""
    existing = _nearest_existing(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=".remaster-write-test-", dir=existing)
        try:
            os.write(fd, b"\0" * WRITE_TEST_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        # Name the folder, not the random name of the test file.
        raise OSError(exc.errno, exc.strerror, str(existing)) from None
    return existing


def check_output_location(source: Path, output: Path, workdir: Path | None, room_check: bool) -> None:
    """Before any work: the output's folder and the work folder take files, and (with `room_check`)
    each has at least the estimated output size free. The estimate is the source's size: a 2x
    output measured 1.13x its source (docs/guide.md, "Disk space"), so less free space than that
    is clearly too little, whatever the estimate's error. Raises a one-line error naming the folder."""
    estimate = source.stat().st_size if room_check else 0
    for folder in dict.fromkeys([output.parent, *([workdir] if workdir is not None else [])]):
        try:
            tested = check_writable(folder)
        except OSError as exc:
            raise describe_failure(exc, source) from None
        free = shutil.disk_usage(tested).free
        if free < estimate:
            raise ResourceError(
                f"{source}: not enough room in {tested}: {human_size(free)} free, the output is estimated at "
                f"{human_size(estimate)} (the input's size); free space or choose another -o "
                "(--no-space-check if the estimate is wrong)"
            )


def read_json_cache(path: Path) -> dict[str, dict]:
    """A cache file of remaster's (entries by key): {} where there is none yet or it is damaged, so
    that what it remembers is worked out again."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return {}
    return entries if isinstance(entries, dict) else {}


def writable_folder(folder: Path) -> Path | None:
    """`folder`, made where missing, if this process can write in it; else None (a read-only or
    full home: a cache there is simply not kept)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


def write_json_cache(path: Path, entries: dict[str, dict]) -> None:
    """Write a cache file whole (two processes writing at once leave one whole file); one that cannot
    be written (a read-only or full home) only means working it out again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as staged:
            staged.write_text(json.dumps(entries, indent=1, sort_keys=True))
    except OSError:
        pass

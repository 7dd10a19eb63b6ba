"""Checkpoints: finished segments in a work directory, with a manifest that says what they are.

The manifest records the input's fingerprint, the effective settings and, for each finished
segment, its frame count, first and last pts and the sha256 of its file. A rerun reuses a
segment only if all of that still matches; anything else (a changed input or setting, a file
cut short by a kill, a corrupt file) is redone. Files are renamed into place only when complete,
and the manifest is replaced atomically, so a kill at any moment leaves a consistent state.

A work folder may be one the user named (`--workdir`), so remaster deletes nothing in it but its
own files, known by name, and the folder itself only if remaster made it (the marker file says
so). A folder that holds anything else is refused before anything is written into it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from remaster.core.errors import UsageError
from remaster.core.outputs import atomic_output, commit_file, fsync_path, sha256_file
from remaster.video.segments import Segment

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
LOCK_NAME = "lock"
# Written first into every work folder: it says the folder is remaster's, and whether remaster made it.
MARKER_NAME = "remaster-workdir.json"
# Every name remaster writes in a work folder (pipeline, mux, cluster); nothing else is ever deleted.
_OWN_NAME = re.compile(
    r"lock|remaster-workdir\.json|manifest\.json(\.tmp)?"  # .tmp: the staged manifest of earlier versions
    r"|\.(manifest|timeline)\.json\.\d+-\w+\.partial"  # a staged manifest or record (outputs.stage_output)
    r"|segment--?\d+-\d+\.mkv(\.partial)?"  # checkpoints and the one being written (first pts, frames)
    r"|video\.mkv|cut\.mkv|window\.txt|cover-\d+(\.[^.]+)?"  # the joined video, the --start/--end cut and its
    # chapters, covers (mux.py)
    r"|\..+\.partial\.(?i:mkv|mp4)"  # the muxed output before its verification
    r"|incoming-[0-9a-f]{32}\.mkv"  # segments that Ray tasks wrote into a shared work folder (scaleout/ray_cluster.py)
    r"|timeline\.(mkv(\.partial)?|json(\.tmp)?)"  # an input with a timestamp reset on one timeline (normalise.py)
)
# What a run needs from an earlier one; every other file of remaster's is a killed run's leftover.
_KEPT_NAME = re.compile(r"lock|remaster-workdir\.json|manifest\.json|segment--?\d+-\d+\.mkv|timeline\.(mkv|json)")


@dataclass(frozen=True)
class SegmentRecord:
    key: str  # Segment.key: the first pts and frame count the plan asked for
    file: str
    frames: int
    first_pts: int
    last_pts: int
    size: int
    sha256: str


def _listing(names: list[str], shown: int = 3) -> str:
    """A few names for a one-line message: `a, b, c and 4 more`."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


class WorkDir:
    """One output's work directory; holds a lock so that two runs never share it.

    `owned`: the folder is remaster's by its name (the default one beside the output), whoever
    made it; otherwise (`--workdir`) only the marker file says whether remaster made it.
    """

    def __init__(
        self,
        root: Path,
        fingerprint: str,
        settings: dict[str, Any],
        effective: dict[str, Any] | None = None,
        owned: bool = False,
    ):
        self.root = root
        self.fingerprint = fingerprint
        self.settings = settings  # what changes the output (see Remasterer.output_settings): compared
        self.effective = effective or {}  # everything else the run used (tile, device...): for the record
        self.owned = owned
        self.records: dict[str, SegmentRecord] = {}
        self.invalidated: str | None = None  # why earlier work was thrown away, for the user
        self.output: dict[str, int] | None = None  # the finished output's file identity (record_output)
        self._lock_fd: int | None = None

    def open(self) -> WorkDir:
        """Make or adopt the folder, lock it, drop a killed run's leftovers, load the manifest."""
        self.claim()
        for entry in self._own_entries():
            if not _KEPT_NAME.fullmatch(entry.name):  # what a killed run was writing or assembling
                entry.unlink()
        self._load()
        return self

    def claim(self) -> None:
        """Make or adopt the folder and lock it, nothing more: what normalise.py needs to write
        the input's copy there before the run plans (close() lets go of it again)."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.root}: is a file; the work folder must be a folder")
        try:
            self.root.mkdir(parents=True)
            created = True
        except FileExistsError:
            created = False
            self._refuse_foreign()
        self._mark(created)
        self._lock()

    def _refuse_foreign(self) -> None:
        """An existing folder is used only if nothing in it is someone else's: before anything is
        written into it, so that a refused folder is left exactly as it was."""
        marked = self.owned or (self.root / MARKER_NAME).exists()
        names = sorted(os.listdir(self.root))
        foreign = [name for name in names if not (marked and _OWN_NAME.fullmatch(name))]
        if foreign:
            raise UsageError(
                f"{self.root}: not a remaster work folder: it holds {_listing(foreign)}; "
                "nothing was changed: give --workdir a new or empty folder"
            )

    def _mark(self, created: bool) -> None:
        marker = self.root / MARKER_NAME
        try:
            # O_EXCL: of two runs starting at once, one writes it; the other then fails on the lock.
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as f:
            json.dump({"remaster_workdir": 1, "created": created or self.owned}, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_path(self.root)

    def _created(self) -> bool:
        """Whether remaster made the folder (so that it may remove it); when unsure, it did not."""
        if self.owned:
            return True
        try:
            return json.loads((self.root / MARKER_NAME).read_text()).get("created") is True
        except (OSError, ValueError, AttributeError):
            return False

    def _lock(self) -> None:
        self._lock_fd = os.open(self.root / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise UsageError(f"{self.root}: another remaster run is using this work directory") from None

    def _own_entries(self) -> list[Path]:
        return sorted(entry for entry in self.root.iterdir() if _OWN_NAME.fullmatch(entry.name) and entry.is_file())

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def discard(self) -> None:
        """Delete remaster's own files, then the folder if remaster made it and nothing else is in
        it; call it holding the lock (after open, before close), and it releases the lock.

        The manifest goes after the segments and the marker last, so that a kill at any moment
        leaves a folder that `remove_finished` still recognises and finishes removing."""
        if not self.root.is_dir():
            self.close()
            return
        last = (MANIFEST_NAME, LOCK_NAME, MARKER_NAME)
        for entry in self._own_entries():
            if entry.name not in last:
                entry.unlink(missing_ok=True)
        created = self._created()
        for name in last:
            (self.root / name).unlink(missing_ok=True)
        self.close()
        if created:
            try:
                self.root.rmdir()
            except OSError:  # something of someone else's is in it (or came in meanwhile): it stays
                pass

    def record_output(self, staged: Path) -> None:
        """Note in the manifest which file the finished output is, just before `staged` is renamed
        onto the output's name (a rename keeps the inode). If a kill comes before the folder is
        removed, the next run for that output sees the output is this file and removes the folder."""
        info = staged.stat()
        self.output = {"device": info.st_dev, "inode": info.st_ino, "size": info.st_size}
        self._save()

    def _load(self) -> None:
        path = self.root / MANIFEST_NAME
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            records = [SegmentRecord(**r) for r in data["segments"]]
            fingerprint, settings = data["input"]["fingerprint"], data["settings"]
        except (ValueError, KeyError, TypeError):
            self.invalidated = "the manifest was unreadable"
            records, fingerprint, settings = [], None, None
        if fingerprint is not None and fingerprint != self.fingerprint:
            self.invalidated = "the input file changed"
        elif settings is not None and settings != self.settings:
            changed = sorted(k for k in set(settings) | set(self.settings) if settings.get(k) != self.settings.get(k))
            self.invalidated = f"settings changed ({', '.join(changed)})"
        if self.invalidated:
            for record in records:
                (self.root / record.file).unlink(missing_ok=True)
            self._save()
            return
        self.records = {r.key: r for r in records}

    def _save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "input": {"fingerprint": self.fingerprint},
            "settings": self.settings,
            "effective": self.effective,
            "segments": [asdict(r) for r in sorted(self.records.values(), key=lambda r: r.first_pts)],
        }
        if self.output is not None:
            data["output"] = self.output
        with atomic_output(self.root / MANIFEST_NAME) as staged:
            staged.write_text(json.dumps(data, indent=1))

    def segment_path(self, segment: Segment) -> Path:
        return self.root / f"segment-{segment.first_pts}-{segment.frame_count}.mkv"

    def partial_path(self, segment: Segment) -> Path:
        path = self.segment_path(segment)
        return path.with_name(path.name + ".partial")

    def finished(self, segment: Segment) -> Path | None:
        """The segment's file if an earlier run finished it and it is intact, else None."""
        record = self.records.get(segment.key)
        if record is None:
            return None
        path = self.root / record.file
        intact = path.is_file() and path.stat().st_size == record.size and sha256_file(path) == record.sha256
        if not intact:
            del self.records[segment.key]
            path.unlink(missing_ok=True)
            return None
        return path

    def commit(self, segment: Segment, partial: Path, frames: int, first_pts: int, last_pts: int) -> Path:
        """Make a fully written segment file a checkpoint: durable, renamed, then recorded.

        `frames`, `first_pts` and `last_pts` describe what is in the file: all of the segment,
        unless the source was damaged and --allow-damaged let the run go on without the
        missing frames.
        """
        final = self.segment_path(segment)
        commit_file(partial, final)
        self.records[segment.key] = SegmentRecord(
            key=segment.key,
            file=final.name,
            frames=frames,
            first_pts=first_pts,
            last_pts=last_pts,
            size=final.stat().st_size,
            sha256=sha256_file(final),
        )
        self._save()
        return final


def remove_finished(root: Path, output: Path, owned: bool) -> bool:
    """Remove the work folder of an output that is finished: one a run killed between putting its
    output in place and removing its folder left behind. Returns True if it did.

    Finished means the manifest names `output`'s very file (device, inode, size), or there is no
    manifest left at all (a removal cut short: nothing in the folder can be reused). A folder in
    use by a run (locked), or that is not remaster's, is left alone."""
    if not output.is_file() or not root.is_dir():
        return False
    if not owned and not (root / MARKER_NAME).exists():
        return False
    manifest = root / MANIFEST_NAME
    if manifest.exists():
        try:
            recorded = json.loads(manifest.read_text()).get("output")
        except (OSError, ValueError, AttributeError):
            return False
        info = output.stat()
        if recorded != {"device": info.st_dev, "inode": info.st_ino, "size": info.st_size}:
            return False
    work = WorkDir(root, "", {}, owned=owned)
    try:
        work._lock()
    except UsageError:
        return False
    work.discard()
    return True

"""Checkpoints: finished segments in a work directory, with a manifest that says what they are.

The manifest records the input's fingerprint, the effective settings and, for each finished
segment, its frame count, first and last pts and the sha256 of its file. A rerun reuses a
segment only if all of that still matches; anything else (a changed input or setting, a file
cut short by a kill, a corrupt file) is redone. Files are renamed into place only when complete,
and the manifest is replaced atomically, so a kill at any moment leaves a consistent state.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from remaster.errors import UsageError
from remaster.video.segments import Segment

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SegmentRecord:
    key: str  # Segment.key: the first pts and frame count the plan asked for
    file: str
    frames: int
    first_pts: int
    last_pts: int
    size: int
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WorkDir:
    """One output's work directory; holds a lock so that two runs never share it."""

    def __init__(self, root: Path, fingerprint: str, settings: dict[str, Any], effective: dict[str, Any] | None = None):
        self.root = root
        self.fingerprint = fingerprint
        self.settings = settings  # what changes the output (see Remasterer.output_settings): compared
        self.effective = effective or {}  # everything else the run used (tile, device...): for the record
        self.records: dict[str, SegmentRecord] = {}
        self.invalidated: str | None = None  # why earlier work was thrown away, for the user
        self._lock_fd: int | None = None

    def open(self) -> WorkDir:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise UsageError(f"{self.root}: another remaster run is using this work directory") from None
        for stale in self.root.glob("*.partial"):  # what a killed run was writing
            stale.unlink()
        self._load()
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
        _write_atomically(self.root / MANIFEST_NAME, json.dumps(data, indent=1))

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
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        final = self.segment_path(segment)
        os.replace(partial, final)
        _fsync_dir(self.root)
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

"""Weights checked once: a model file's sha256, remembered with the file's size, mtime and ctime
(and inode), so that a run reads the file whole for its checksum only on first use and after any
change, not on every start (33 MB, 0.2 s for RRDBNet's 4x weights; a video job's workers each
start anew).

A file whose stamp differs from the remembered one is hashed again: a rewrite changes mtime and
ctime, and ctime cannot be set back by a user's tools. The cache is a JSON file in
`resources.cache_dir()`; where it cannot be read or written the checksum is simply computed.
"""

from __future__ import annotations

from pathlib import Path

from remaster.core.outputs import read_json_cache, sha256_file, write_json_cache
from remaster.core.resources import cache_dir

CACHE_NAME = "verified-weights.json"


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def remembered_sha256(path: Path) -> str:
    """The file's sha256: remembered where its stamp is unchanged, else read and remembered."""
    key = str(path.resolve())
    stamp = _stamp(path)
    cache = cache_dir() / CACHE_NAME
    entry = read_json_cache(cache).get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = sha256_file(path)
    if _stamp(path) == stamp:  # not changed while it was read
        entries = read_json_cache(cache)  # again: another process may have added files meanwhile
        entries[key] = {"stamp": stamp, "sha256": digest}
        write_json_cache(cache, entries)
    return digest

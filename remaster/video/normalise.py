"""An input whose timestamps restart, put on one timeline: two MPEG-TS recordings joined with `cat`.

The probe finds the reset (probe.TimestampReset). FFmpeg's MPEG-TS and MPEG-PS demuxers declare
that their timestamps may jump (AVFMT_TS_DISCONT), and the ffmpeg tool, reading such a file, moves
all streams by one common offset when a timestamp jumps back by more than 0.1 s or either way by
more than -dts_delta_threshold (10 s) (fftools/ffmpeg_demux.c, ts_discontinuity_detect): each part
then follows the one before it, and its audio and subtitles keep their place against its video.
A stream copy into Matroska (`-map 0 -c copy`, what the refusal used to tell users to do) keeps
that timeline. remaster makes the copy once, in the work folder, and the whole run (probe,
decode, the mux of the other streams) reads it; checkpoints keep the original's fingerprint.

A container FFmpeg does not fix this way (a reset inside an MP4 or Matroska file) keeps its reset
in the copy, and the run is refused with the probe's one line, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import ffmpeg

from remaster.core.errors import UsageError
from remaster.core.outputs import atomic_output, commit_file, sha256_file
from remaster.media.ffmpeg import run_ffmpeg
from remaster.video.checkpoint import MANIFEST_NAME, WorkDir
from remaster.video.probe import MediaInfo, TimestampReset, fingerprint, probe

COPY_NAME = "timeline.mkv"  # names checkpoint._OWN_NAME knows, so that cleanup removes them
RECORD_NAME = "timeline.json"  # the source the copy was made from, and the copy's size and sha256


def probe_on_one_timeline(source: Path, root: Path, owned: bool) -> tuple[MediaInfo, list[str]]:
    """The probe of `source`; or, if its timestamps restart, the probe of its copy on one timeline
    in the work folder `root` (`owned` as for WorkDir) and the note that says so."""
    try:
        return probe(source), []
    except TimestampReset as exc:
        reset = exc
    work = WorkDir(root, fingerprint(source), {}, owned=owned)
    work.claim()  # refuses a folder that is not remaster's before anything is written into it
    try:
        copy = _copy_on_one_timeline(source, root, work.fingerprint)
        try:
            media = probe(copy)
        except TimestampReset:
            # Naming the user's file and its time; the remux the probe's message suggests is what failed.
            raise UsageError(f"{source}: {reset.cause}; a copy by ffmpeg keeps it: cut the file there") from None
    except BaseException:
        if not (root / MANIFEST_NAME).exists():  # nothing an earlier run finished: leave no trace
            work.discard()
        raise
    finally:
        # Let go until the run opens the folder for good (WorkDir.open locks it again at once):
        # a second run on this output that comes in between is refused there, or refuses this one.
        work.close()
    return media, [f"{source.name}: timestamp reset at {reset.at:.3f} s: joined onto one timeline"]


def _copy_on_one_timeline(source: Path, root: Path, source_fingerprint: str) -> Path:
    """The copy of `source` in `root`: an earlier run's if it is intact and of this very input, else a new one."""
    copy, record = root / COPY_NAME, root / RECORD_NAME
    if _intact(copy, record, source_fingerprint):
        return copy
    record.unlink(missing_ok=True)  # first: a kill below must never leave a record beside another copy
    partial = root / (COPY_NAME + ".partial")
    # Data streams (SCTE-35, EPG) go: Matroska cannot hold them, and the mux drops them anyway.
    # `-map 0` (every stream) is a keyword: ffmpeg-python writes no -map for an input's default
    # streams. A keyword takes one value, so the second -map, the exclusion, is an output argument.
    copy_command = ffmpeg.output(ffmpeg.input(str(source)), str(partial), map="0", c="copy", f="matroska")
    try:
        # ffmpeg dies with remaster: none is left writing into the work folder after a kill.
        run_ffmpeg(copy_command, source, "putting it on one timeline", output_args=["-map", "-0:d?"])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    commit_file(partial, copy)
    info = {"source": source_fingerprint, "size": copy.stat().st_size, "sha256": sha256_file(copy)}
    with atomic_output(record) as staged:
        staged.write_text(json.dumps(info))
    return copy


def _intact(copy: Path, record: Path, source_fingerprint: str) -> bool:
    try:
        info = json.loads(record.read_text())
        return (
            info["source"] == source_fingerprint
            and copy.stat().st_size == info["size"]
            and sha256_file(copy) == info["sha256"]
        )
    except (OSError, ValueError, KeyError, TypeError):  # none, unreadable, or from another version
        return False


def forget_copy(root: Path, owned: bool) -> None:
    """After a run was refused before it opened its work folder: remove the copy it made there, and
    the folder if remaster made it, unless an earlier run finished segments there (a rerun resumes
    and reuses the copy). A folder in use by another run, or not remaster's, is left as it is."""
    if not (root / COPY_NAME).exists() or (root / MANIFEST_NAME).exists():
        return
    work = WorkDir(root, "", {}, owned=owned)
    try:
        work.claim()
    except UsageError:
        return
    work.discard()

"""What is wrong with one row of the jobs table, read on its own: a row damaged by hand or by a
tool other than remaster (options that are not JSON, a NUL byte or a BLOB in a path) fails its
job with one line saying what, and the other jobs still run."""

from __future__ import annotations

import json
from enum import StrEnum


class JobState(StrEnum):
    """A job's state; the schema's CHECK lists the same values."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PAUSED = "paused"


STATES = tuple(JobState)
_TEXT, _INTEGER, _NUMBER = (str,), (int,), (int, float)
# What each column of a job may hold (read from the table, or imported), and whether it may be null.
COLUMN_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_INTEGER, False),
    "input": (_TEXT, False),
    "output": (_TEXT, False),
    "preset": (_TEXT, False),
    "cwd": (_TEXT, False),
    "priority": (_INTEGER, True),
    "state": (_TEXT, True),
    "attempts": (_INTEGER, True),
    "failures": (_INTEGER, True),
    "error": (_TEXT, True),
    "frames_done": (_INTEGER, True),
    "frames_total": (_INTEGER, True),
    "fps": (_NUMBER, True),
    "eta_seconds": (_NUMBER, True),
    "added_at": (_NUMBER, False),
    "started_at": (_NUMBER, True),
    "finished_at": (_NUMBER, True),
}

_TEXT_COLUMNS = ("input", "output", "preset", "cwd")


def row_problem(values: dict) -> str | None:
    """What makes a row unusable as a job, in a few words naming the column; None for a sound row."""
    for name in _TEXT_COLUMNS:
        problem = _text_problem(values.get(name))
        if problem:
            return f"{name} {problem}"
    for name, (types, optional) in COLUMN_TYPES.items():
        value = values.get(name)
        if value is None and optional or name in _TEXT_COLUMNS:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{name} is {shown(value)}"
    if values["state"] not in STATES:
        return f"state is {shown(values['state'])}"
    return _options_problem(values.get("options"))


def unusable_job(values: dict, problem: str) -> dict:
    """The fields of a Job for a row that cannot be run (`problem`: row_problem's): failed, its
    error naming the job and the problem, each column as it can be shown."""
    job = {name: _number_or_none(values.get(name)) for name, (types, _) in COLUMN_TYPES.items() if str not in types}
    for name in ("attempts", "failures", "priority"):
        job[name] = job[name] or 0
    job["added_at"] = job["added_at"] or 0.0
    for name in _TEXT_COLUMNS:
        value = values.get(name)
        job[name] = value if _text_problem(value) is None else shown(value)
    job.update(id=values["id"], options=(), state=JobState.FAILED, error=damaged_row(values["id"], problem))
    return {**job, "worker_id": None, "lease_until": None, "pid": None}


def damaged_row(job_id: int, problem: str) -> str:
    """The error a job of a damaged row fails with (the worker's line and the tables name the job)."""
    return f"damaged queue row: {problem}; fix or remove it (`remaster queue remove {job_id}`)"


def _number_or_none(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text_problem(value: object) -> str | None:
    if isinstance(value, bytes):
        return f"is a BLOB, not text ({shown(value)})"
    if not isinstance(value, str) or not value:
        return f"is {shown(value)}"
    if "\0" in value:
        return f"holds a NUL byte ({shown(value)})"
    if not is_utf8(value):
        return f"is not UTF-8 text ({shown(value)})"
    return None


def _options_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return f"options is {shown(text)}, not a JSON list"
    try:
        options = json.loads(text)
    except ValueError:
        return f"options is not JSON ({shown(text)})"
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        return f"options is not a JSON list of text ({shown(text)})"
    for option in options:
        if "\0" in option:
            return f"options hold a NUL byte ({shown(option)})"
    return None


def shown(value: object, length: int = 40) -> str:
    """A value as a line of text can show it: escaped (text that is not UTF-8 as its bytes), cut short."""
    if isinstance(value, str) and not is_utf8(value):
        value = value.encode(errors="surrogateescape")
    text = repr(value)
    return text if len(text) <= length else text[: length - 1] + "…"


def is_utf8(text: str) -> bool:
    """False for text read from bytes that are not UTF-8 (QueueStore's text_factory keeps them as
    surrogate escapes)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True

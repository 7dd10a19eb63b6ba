"""The queue's SQLite file: schema, migrations and every transaction that reads or changes jobs.

Several processes share one file (workers on different GPUs, `queue add` and `queue status` from a
shell), so every change runs in `BEGIN IMMEDIATE`: the write lock is taken before anything is read,
and two workers can never both see a job as queued and both take it. WAL lets readers (status) go
on while a worker writes, and `busy_timeout` makes a writer wait for the lock instead of failing.

A running job holds a lease (`worker_id`, `lease_until`) that its worker renews; a job whose lease
ran out belongs to a worker that died, and the next claim puts it back in the queue.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from remaster.core.errors import QueueDamaged, RemasterError, UsageError
from remaster.scaleout.queue.rows import COLUMN_TYPES, STATES, JobState, is_utf8, row_problem, unusable_job

TABLE_ROWS = 100  # jobs `remaster queue status` lists without --all: a screenful or two

# Schema migrations, in order: `PRAGMA user_version` says how many have run. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a removed job's id is never reused
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            preset TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '[]',    -- JSON list: remaster options for the child
            cwd TEXT NOT NULL,                     -- where `queue add` ran: relative paths in options
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'done', 'failed', 'paused')),
            attempts INTEGER NOT NULL DEFAULT 0,   -- runs started
            failures INTEGER NOT NULL DEFAULT 0,   -- runs that failed (the retry budget counts these)
            error TEXT,
            worker_id TEXT,
            lease_until REAL,
            pid INTEGER,
            frames_done INTEGER,
            frames_total INTEGER,
            fps REAL,
            eta_seconds REAL,
            added_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        )""",
        "CREATE INDEX jobs_next ON jobs (state, priority DESC, id)",
        # One output, one live job: two jobs writing the same file would share a work folder.
        "CREATE UNIQUE INDEX jobs_live_output ON jobs (output) WHERE state != 'done'",
        """CREATE TABLE claims (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            worker_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            -- running, done, retry, failed, interrupted (worker stopped), stopped (paused or removed),
            -- lost (the worker's lease ran out)
            outcome TEXT NOT NULL DEFAULT 'running',
            exit_code INTEGER,
            error TEXT,
            log TEXT
        )""",
        "CREATE INDEX claims_job ON claims (job_id)",
        "CREATE INDEX claims_worker ON claims (worker_id)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def database_error(path: Path, exc: sqlite3.Error) -> RemasterError:
    """A one-line error for an SQLite error met while working: damage (a malformed page, a broken
    index that makes a constraint fail) with the way to recover, anything else (locked, disk
    full, read-only) as it is."""
    damaged = isinstance(exc, sqlite3.IntegrityError) or any(
        word in str(exc) for word in ("malformed", "corrupt", "not a database")
    )
    if damaged:
        return QueueDamaged(path, str(exc))
    return RemasterError(f"{path}: {exc}")


def _rounded(progress: float | None) -> float | None:
    return None if progress is None else round(progress, 4)  # as _JOBS_JSON's


def _undamaged_text(data: bytes) -> str:
    return data.decode(errors="surrogateescape")


def default_queue_path() -> Path:
    """$REMASTER_HOME/queue.sqlite, else $XDG_DATA_HOME/remaster/queue.sqlite (~/.local/share/...)."""
    home = os.environ.get("REMASTER_HOME")
    if home:
        return Path(home) / "queue.sqlite"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "remaster" / "queue.sqlite"


@dataclass(frozen=True)
class JobSpec:
    """A job to add: absolute paths, the preset's name, the options passed on to `remaster`, and the
    folder to run it in (where it was added, so that a relative path among the options still works)."""

    input: str
    output: str
    preset: str
    cwd: str
    options: tuple[str, ...] = ()
    priority: int = 0


@dataclass(frozen=True)
class Job:
    """A row of the jobs table; `attempts` counts runs started, `failures` the runs that failed."""

    id: int
    input: str
    output: str
    preset: str
    options: tuple[str, ...]
    cwd: str
    priority: int
    state: JobState
    attempts: int
    failures: int
    error: str | None
    worker_id: str | None
    lease_until: float | None
    pid: int | None
    frames_done: int | None
    frames_total: int | None
    fps: float | None
    eta_seconds: float | None
    added_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """The row as a job; a row that cannot be one (row_problem) as a failed job whose error
        names what is wrong, so that it shows as such and never runs."""
        values = dict(row)
        problem = row_problem(values)
        if problem is None:
            values["options"] = tuple(json.loads(values["options"]))
            values["state"] = JobState(values["state"])
            return cls(**values)
        return cls(**unusable_job(values, problem))

    @property
    def progress(self) -> float | None:
        """Fraction of the frames done, 0..1; None before the child has counted them."""
        if self.state == JobState.DONE:
            return 1.0
        if not self.frames_total or self.frames_done is None:
            return None
        return self.frames_done / self.frames_total


_JOBS_JSON = (
    "SELECT json_group_array(json_object("
    + ", ".join(f"'{f.name}', json(options)" if f.name == "options" else f"'{f.name}', {f.name}" for f in fields(Job))
    + ", 'progress', CASE WHEN state = 'done' THEN 1.0 WHEN frames_total > 0 AND frames_done IS NOT NULL"
    " THEN round(CAST(frames_done AS REAL) / frames_total, 4) END"
    ")) FROM (SELECT * FROM jobs ORDER BY id)"
)


@dataclass(frozen=True)
class ClaimRecord:
    """One run of a job: who ran it, when, and how it ended (`queue log` shows these)."""

    id: int
    job_id: int
    worker_id: str
    started_at: float
    ended_at: float | None
    outcome: str
    exit_code: int | None
    error: str | None
    log: str | None


@dataclass(frozen=True)
class Claim:
    """A job a worker holds: `id` names the run in the claims table."""

    id: int
    job: Job
    worker_id: str


@dataclass
class Progress:
    """What the child reported last (its --json-progress events); written with each heartbeat."""

    pid: int | None = None
    frames_done: int | None = None
    frames_total: int | None = None
    fps: float | None = None
    eta_seconds: float | None = None
    # What the child does before its first frame ("probing", "loading model"): for the worker's live
    # line only, not written to the queue file.
    status: str | None = None


@dataclass(frozen=True)
class Ending:
    """How a run ended, as the worker decided: `state` None leaves the job alone (it is not ours)."""

    outcome: str
    state: JobState | None
    failure: bool = False
    exit_code: int | None = None
    error: str | None = None
    log: str = ""
    progress: Progress = field(default_factory=Progress)


class QueueStore:
    """One connection to a queue file. `clock` is injectable so that lease expiry can be tested."""

    def __init__(self, path: Path, *, create: bool = True, clock: Callable[[], float] = time.time):
        self.path = path
        self.clock = clock
        if not create and not path.exists():
            raise UsageError(f"{path}: no queue here (`remaster queue add` makes one)")
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write below says BEGIN IMMEDIATE itself.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Text that is not UTF-8 (written by another tool) reads as text that rows.row_problem
        # refuses, for its job alone, instead of an error that would stop every read of the table.
        self._db.text_factory = _undamaged_text
        try:
            self._db.execute("PRAGMA busy_timeout = 10000")  # wait up to 10 s for another process's write
            self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UsageError(f"{path}: not a remaster queue ({exc})") from None
        # Before anything is written: a damaged file would give tracebacks later, or take new jobs
        # into pages that are already lost. quick_check reads every page (not the index-to-table
        # cross-check of integrity_check): 12 ms for 10,000 jobs, measured with benchmarks/queue_ops.py.
        problem = self._damage()
        if problem is not None:
            self._db.close()
            raise QueueDamaged(path, problem)
        try:
            # FULL: a "done" lost to a power cut would make the job run again, and its child would then
            # refuse the output that it finds already there.
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UsageError(f"{path}: not a remaster queue ({exc})") from None

    def _damage(self) -> str | None:
        """The first problem PRAGMA quick_check finds, or None for a sound file."""
        try:
            rows = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            return str(exc)
        lines = [line for row in rows if row != "ok" for line in row.splitlines() if not line.startswith("***")]
        return lines[0] if lines else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path}: queue schema version {version} is newer than this remaster's ({SCHEMA_VERSION}); "
                "upgrade remaster"
            )
        if version == SCHEMA_VERSION:
            return
        with self._write():
            # Read again under the write lock: another process may have migrated in the meantime.
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- adding and reading ------------------------------------------------------------------

    def add(self, specs: Sequence[JobSpec]) -> list[Job]:
        """Add jobs in one transaction: all of them, or none when one's output is already queued."""
        now = self.clock()
        ids = []
        with self._write() as db:
            for spec in specs:
                live = db.execute(
                    "SELECT id, state FROM jobs WHERE output = ? AND state != 'done'", (spec.output,)
                ).fetchone()
                if live is not None:
                    raise UsageError(f"{spec.output}: already in the queue as job {live['id']} ({live['state']})")
                cursor = db.execute(
                    "INSERT INTO jobs (input, output, preset, options, cwd, priority, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (spec.input, spec.output, spec.preset, json.dumps(spec.options), spec.cwd, spec.priority, now),
                )
                ids.append(cursor.lastrowid)
        return self.jobs(ids)

    def jobs(self, ids: Iterable[int] | None = None) -> list[Job]:
        """All jobs, or the given ones, in the order they were added."""
        if ids is None:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        else:
            ids = list(ids)
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", ids
            ).fetchall()
        return [Job.from_row(row) for row in rows]

    def by_urgency(self, limit: int | None = None) -> list[Job]:
        """Jobs in the order a person wants them: running, queued (in the order they will run), paused,
        failed, done (the latest first); the first `limit` of them."""
        rows = self._db.execute(
            "SELECT * FROM jobs ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 WHEN 'paused' THEN 2"
            " WHEN 'failed' THEN 3 ELSE 4 END, priority DESC, finished_at DESC, id LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [Job.from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def jobs_json(self) -> str:
        """All jobs as a JSON list, in the order added: every column (times in seconds since the epoch,
        `options` a list) and `progress`, as Job.progress. Built by SQLite's JSON functions, 10x faster
        than through Python objects: `status --json` stays under 100 ms on a queue of 10,000 jobs."""
        try:
            text = self._db.execute(_JOBS_JSON).fetchone()[0]
            if is_utf8(text):
                return text
        except sqlite3.OperationalError:  # options that are not JSON, a BLOB
            pass
        # A damaged row: each row on its own, the damaged ones as the failed jobs they are (Job.from_row).
        jobs = self.jobs()
        return json.dumps([{**asdict(job), "progress": _rounded(job.progress)} for job in jobs])

    def job(self, job_id: int) -> Job:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"{self.path}: no job {job_id}")
        return Job.from_row(row)

    def claims(self, job_id: int) -> list[ClaimRecord]:
        """The runs of one job, oldest first."""
        rows = self._db.execute("SELECT * FROM claims WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [ClaimRecord(**dict(row)) for row in rows]

    def claims_by(self, worker_ids: Sequence[str]) -> list[ClaimRecord]:
        """Every run by these workers, oldest first: what one `queue run` did."""
        marks = ",".join("?" * len(worker_ids))
        rows = self._db.execute(f"SELECT * FROM claims WHERE worker_id IN ({marks}) ORDER BY id", worker_ids)
        return [ClaimRecord(**dict(row)) for row in rows.fetchall()]

    # -- what workers do ---------------------------------------------------------------------

    def claim(
        self, worker_id: str, lease_seconds: float, retries: int, on_damaged: Callable[[Job], None] = lambda job: None
    ) -> Claim | None:
        """Take the next queued job (highest priority, then oldest), or None when there is none.
        A queued row that cannot be a job fails on the way, and `on_damaged` is told of it.

        First, jobs whose lease ran out go back to the queue, their run counted as a failure (the
        worker died: SIGKILL, OOM, power cut); after `retries` failures they fail for good, so that
        a job that kills its worker every time cannot take down worker after worker.
        """
        now = self.clock()
        with self._write() as db:
            expired = db.execute(
                "SELECT id, worker_id, failures FROM jobs WHERE state = 'running' AND lease_until < ?", (now,)
            ).fetchall()
            for row in expired:
                error = f"worker {row['worker_id']} stopped renewing its lease (it died or hung)"
                state = "failed" if row["failures"] + 1 > retries else "queued"
                db.execute(
                    "UPDATE jobs SET state = ?, failures = failures + 1, error = ?, worker_id = NULL,"
                    " lease_until = NULL, pid = NULL, finished_at = ? WHERE id = ?",
                    (state, error, now if state == "failed" else None, row["id"]),
                )
                db.execute(
                    "UPDATE claims SET outcome = 'lost', ended_at = ?, error = ?"
                    " WHERE job_id = ? AND outcome = 'running'",
                    (now, error, row["id"]),
                )
            job = self._next_queued(db, worker_id, now, on_damaged)
            if job is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', worker_id = ?, lease_until = ?, attempts = attempts + 1,"
                " started_at = ?, finished_at = NULL, pid = NULL, fps = NULL, eta_seconds = NULL"
                " WHERE id = ? AND state = 'queued'",
                (worker_id, now + lease_seconds, now, job.id),
            )
            cursor = db.execute(
                "INSERT INTO claims (job_id, worker_id, started_at) VALUES (?, ?, ?)", (job.id, worker_id, now)
            )
            job = Job.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (job.id,)).fetchone())
        return Claim(cursor.lastrowid, job, worker_id)

    @staticmethod
    def _next_queued(
        db: sqlite3.Connection, worker_id: str, now: float, on_damaged: Callable[[Job], None]
    ) -> Job | None:
        """The next queued job (highest priority, then oldest) whose row is sound; each damaged row
        met on the way fails (rows.row_problem), with a run in its log that says why."""
        while True:
            row = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT 1").fetchone()
            if row is None:
                return None
            job = Job.from_row(row)
            if job.state == JobState.QUEUED:
                return job
            db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ?", (job.error, now, job.id)
            )
            db.execute(
                "INSERT INTO claims (job_id, worker_id, started_at, ended_at, outcome, error)"
                " VALUES (?, ?, ?, ?, 'failed', ?)",
                (job.id, worker_id, now, now, job.error),
            )
            on_damaged(job)

    def heartbeat(self, claim: Claim, lease_seconds: float, progress: Progress | None = None) -> bool:
        """Renew the lease (and record progress); False when the job is no longer this worker's:
        paused, removed, or taken over after the lease ran out."""
        now = self.clock()
        assignments = "lease_until = ?"
        values: list[object] = [now + lease_seconds]
        if progress is not None:
            assignments += ", pid = ?, frames_done = ?, frames_total = ?, fps = ?, eta_seconds = ?"
            values += [progress.pid, progress.frames_done, progress.frames_total, progress.fps, progress.eta_seconds]
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND worker_id = ? AND state = 'running'",
                (*values, claim.job.id, claim.worker_id),
            )
        return cursor.rowcount == 1

    def finish(self, claim: Claim, ending: Ending) -> bool:
        """Record how a run ended; False when the job was no longer this worker's to change."""
        now = self.clock()
        p = ending.progress
        with self._write() as db:
            # A run already judged `lost` (its worker came back too late) keeps that verdict: the log
            # should say why the job went to another worker. Its exit code and messages are still kept.
            db.execute(
                "UPDATE claims SET outcome = CASE outcome WHEN 'running' THEN ? ELSE outcome END,"
                " ended_at = COALESCE(ended_at, ?), exit_code = ?, error = COALESCE(error, ?), log = ? WHERE id = ?",
                (ending.outcome, now, ending.exit_code, ending.error, ending.log, claim.id),
            )
            if ending.state is None:
                return False
            cursor = db.execute(
                "UPDATE jobs SET state = ?, failures = failures + ?, error = ?, worker_id = NULL, lease_until = NULL,"
                " pid = NULL, frames_done = ?, frames_total = ?, fps = ?, eta_seconds = ?, finished_at = ?"
                " WHERE id = ? AND (worker_id = ? AND state = 'running' OR ? AND worker_id IS NULL"
                " AND state IN ('paused', 'queued'))",
                (
                    ending.state,
                    int(ending.failure),
                    ending.error if ending.failure else None,  # a stopped run's message is no error
                    p.frames_done,
                    p.frames_total,
                    p.fps,
                    0.0 if ending.state == "done" else None,
                    now if ending.state in ("done", "failed") else None,
                    claim.job.id,
                    claim.worker_id,
                    # A run that finished its output is done even if it was paused (and perhaps
                    # resumed) while its last segment was being written: left paused, a finished
                    # episode would look like one still to do.
                    ending.state == "done",
                ),
            )
        return cursor.rowcount == 1

    def has_running(self) -> bool:
        """Whether some job runs (or ran, under a lease not yet expired): it may yet come back."""
        return self._db.execute("SELECT 1 FROM jobs WHERE state = 'running' LIMIT 1").fetchone() is not None

    # -- what users do -----------------------------------------------------------------------

    def retry(self, ids: Sequence[int]) -> list[Job]:
        """Failed jobs back to the queue, with a fresh retry budget."""
        return self._change(ids, ("failed",), "retry", "state = 'queued', failures = 0, finished_at = NULL")

    def pause(self, ids: Sequence[int]) -> list[Job]:
        """Queued jobs wait; a running one is stopped by its worker at its next heartbeat (its
        finished segments stay in the work folder, so `resume` picks it up where it was)."""
        assignments = "state = 'paused', worker_id = NULL, lease_until = NULL, pid = NULL"
        return self._change(ids, ("queued", "running", "paused"), "pause", assignments)

    def resume(self, ids: Sequence[int]) -> list[Job]:
        return self._change(ids, ("paused",), "resume", "state = 'queued'")

    def remove(self, ids: Sequence[int]) -> list[Job]:
        """Forget jobs, in any state (a running one is stopped by its worker); files are left alone."""
        with self._write() as db:
            jobs = self._existing(ids)
            db.executemany("DELETE FROM jobs WHERE id = ?", [(job.id,) for job in jobs])
        return jobs

    def _existing(self, ids: Sequence[int]) -> list[Job]:
        jobs = self.jobs(ids)
        missing = sorted(set(ids) - {job.id for job in jobs})
        if missing:
            raise UsageError(f"{self.path}: no job {', '.join(map(str, missing))}")
        return jobs

    def _change(self, ids: Sequence[int], allowed: tuple[str, ...], verb: str, assignments: str) -> list[Job]:
        """Change jobs that are in an allowed state: all of them, or none."""
        with self._write() as db:
            jobs = self._existing(ids)
            for job in jobs:
                if job.state not in allowed:
                    raise UsageError(
                        f"{self.path}: job {job.id} is {job.state}; {verb} takes {' or '.join(allowed)} jobs"
                    )
            db.executemany(f"UPDATE jobs SET {assignments} WHERE id = ?", [(job.id,) for job in jobs])
        return self.jobs(ids)


# -- export and import: the jobs as JSON, to get them out of a damaged file into a fresh one ----------


def job_record(values: dict) -> dict:
    """A job as `export` writes it and `import` reads it (the columns of `status --json`, less the
    worker's lease: a running job comes back queued). ValueError says what is wrong with it."""
    record = {}
    for name, (types, optional) in COLUMN_TYPES.items():
        value = values.get(name)
        if value is None and optional:
            record[name] = None
        elif isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"{name} is {value!r}")
        else:
            record[name] = value
    options = values.get("options", [])
    if isinstance(options, str):  # as the jobs table stores it
        options = json.loads(options)
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError(f"options is {options!r}")
    record["options"] = options
    record["state"] = record["state"] or "queued"
    if record["state"] not in STATES:
        raise ValueError(f"state is {record['state']!r}")
    if record["state"] == "running":  # its worker is gone with the old file: it runs again
        record["state"] = "queued"
    for name in ("priority", "attempts", "failures"):
        record[name] = record[name] or 0
    if record["id"] < 1:
        raise ValueError(f"id is {record['id']}")
    return record


@dataclass
class Salvage:
    """What `queue export` could read: good jobs, and the ids of those it could not."""

    jobs: list[dict]
    unreadable: list[int]  # rows that SQLite or the checks refused
    missing: list[int]  # in a damaged file: ids not found, either removed or lost with a damaged page


def salvage_jobs(path: Path) -> Salvage:
    """Every job that can still be read from a queue file, damaged or not, without writing to it.

    A damaged page stops a scan of the table where it lies, so each id up to the highest known
    (the AUTOINCREMENT counter, else the highest a scan from either end read) is looked up on its
    own: only the rows on damaged pages are lost. A row that reads but holds nonsense counts as lost.
    """
    if not path.is_file():
        raise UsageError(f"{path}: no queue here")
    # Read-only, so that nothing is checkpointed into the damaged file either. Without a -wal file
    # (no process has it open), immutable: else SQLite would leave a -wal and -shm beside it.
    wal = path.with_name(path.name + "-wal").exists()
    db = sqlite3.connect(f"{path.absolute().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True)
    db.row_factory = sqlite3.Row
    try:
        try:
            damaged = any(row[0] != "ok" for row in db.execute("PRAGMA quick_check"))
        except sqlite3.DatabaseError:
            damaged = True
        # The highest id ever given; if that row of sqlite_sequence is lost, the highest id of a row
        # that reads as a job (a damaged page can show any number as an id).
        try:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
            highest = row[0] if row is not None and isinstance(row[0], int) else None
        except sqlite3.DatabaseError:
            highest = None
        if highest is None:
            highest = 0
            for order in ("", " DESC"):  # from either end, up to a damaged page
                try:
                    for row in db.execute(f"SELECT * FROM jobs ORDER BY id{order}"):
                        try:
                            highest = max(highest, job_record(dict(row))["id"])
                        except ValueError:
                            continue
                except sqlite3.DatabaseError:
                    pass
        salvage = Salvage([], [], [])
        for job_id in range(1, highest + 1):
            try:
                row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is not None:
                    salvage.jobs.append(job_record(dict(row)))
                elif damaged:  # removed earlier, or its row was on a damaged page: no way to tell
                    salvage.missing.append(job_id)
            except (sqlite3.DatabaseError, ValueError):  # ValueError: a row that reads as nonsense
                salvage.unreadable.append(job_id)
        return salvage
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path}: cannot read the queue file ({exc})") from None
    finally:
        db.close()


def import_jobs(path: Path, records: list[dict]) -> int:
    """Put exported jobs into a new queue file at `path`, with their ids; all of them, or none."""
    for leftover in (path, path.with_name(path.name + "-wal")):
        if leftover.exists():
            raise UsageError(f"{leftover}: exists; import makes a fresh queue file: move it away or give --queue NEW")
    columns = [*COLUMN_TYPES, "options"]
    insert = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    try:
        with QueueStore(path) as store, store._write() as db:
            for record in records:
                values = [json.dumps(record[c]) if c == "options" else record[c] for c in columns]
                try:
                    db.execute(insert, values)
                except sqlite3.IntegrityError as exc:
                    raise UsageError(f"job {record['id']} ({record['output']}): cannot be imported ({exc})") from None
    except BaseException:
        for made in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            made.unlink(missing_ok=True)  # ours: it did not exist before
        raise
    return len(records)

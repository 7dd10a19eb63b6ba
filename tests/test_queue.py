"""The job queue: claims, leases and priorities on the SQLite file (fast), then real workers running
real remaster children on tiny episodes (slow): a child killed by a signal is retried, a worker killed
with SIGKILL is taken over without running anything twice, three workers share one queue, and a
paused job or a stopped worker leaves its job to resume, with no failure counted."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from conftest import FAST_MODEL

from remaster.commands import queue as command
from remaster.core.errors import UsageError
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.scaleout.queue import actions
from remaster.scaleout.queue.child import Outcome, run_job
from remaster.scaleout.queue.plan import plan_jobs
from remaster.scaleout.queue.store import SCHEMA_VERSION, JobSpec, Progress, QueueStore, default_queue_path
from remaster.scaleout.queue.worker import Worker, WorkerOptions, decide

SPEC = EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25, ass_subtitles=False)
OPTIONS = ["--segment-seconds", "0.25", "--codec", "x264"]
# One model thread per child: the slow tests run up to three children at once on two cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _spec(n: int, priority: int = 0) -> JobSpec:
    return JobSpec(f"/in/{n}.mkv", f"/out/{n}.mkv", "2x-conservative", "/", ("--crf", "18"), priority)


@pytest.fixture
def store(tmp_path) -> QueueStore:
    with QueueStore(tmp_path / "q.sqlite", clock=Clock()) as opened:
        yield opened


# -- the store ------------------------------------------------------------------------------------


def test_default_queue_path(monkeypatch, tmp_path):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path / "home"))
    assert default_queue_path() == tmp_path / "home" / "queue.sqlite"
    monkeypatch.delenv("REMASTER_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_queue_path() == tmp_path / "data" / "remaster" / "queue.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_queue_path() == Path.home() / ".local" / "share" / "remaster" / "queue.sqlite"


def test_schema_is_versioned_and_in_wal_mode(tmp_path):
    path = tmp_path / "q.sqlite"
    QueueStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(UsageError, match="newer than this remaster"):
        QueueStore(path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(UsageError, match="junk.sqlite: not a remaster queue"):
        QueueStore(tmp_path / "junk.sqlite")
    with pytest.raises(UsageError, match="no queue here"):
        QueueStore(tmp_path / "missing.sqlite", create=False)


def test_claims_go_by_priority_then_in_the_order_added(store):
    store.add([_spec(1), _spec(2, priority=5), _spec(3), _spec(4, priority=5), _spec(5, priority=-1)])
    order = []
    while (claim := store.claim("w", 30, 2)) is not None:
        order.append(claim.job.id)
        assert claim.job.state == "running" and claim.job.attempts == 1 and claim.job.worker_id == "w"
    assert order == [2, 4, 1, 3, 5]


def test_concurrent_claims_never_share_a_job(tmp_path):
    path = tmp_path / "q.sqlite"
    with QueueStore(path) as store:
        store.add([_spec(n) for n in range(60)])
    claimed: list[int] = []

    def claim_all(name: str) -> None:
        with QueueStore(path) as own:  # a connection each, as separate worker processes have
            while (claim := own.claim(name, 30, 2)) is not None:
                claimed.append(claim.job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(1, 61))
    with QueueStore(path) as store:
        assert all(len(store.claims(job.id)) == 1 for job in store.jobs())


def test_an_expired_lease_is_taken_over_and_counted(store):
    store.add([_spec(1)])
    first = store.claim("a", 30, 2)
    store.clock.now += 20
    assert store.heartbeat(first, 30, Progress(pid=1, frames_done=5, frames_total=24))  # renewed: +30 from now
    store.clock.now += 29
    assert store.claim("b", 30, 2) is None  # still a's
    store.clock.now += 2
    second = store.claim("b", 30, 2)
    assert second.job.id == 1 and second.job.attempts == 2 and second.job.failures == 1
    assert "worker a stopped renewing its lease" in second.job.error
    assert not store.heartbeat(first, 30)  # a, if it comes back, learns that it lost the job
    assert not store.finish(first, decide(_outcome(0), first.job, ours=False, retries=2))
    assert store.job(1).worker_id == "b" and store.job(1).state == "running"
    assert [run.outcome for run in store.claims(1)] == ["lost", "running"]


def test_a_job_paused_as_its_run_finishes_is_done(store):
    store.add([_spec(1), _spec(2)])
    first = store.claim("a", 30, 2)
    store.pause([1])
    assert not store.heartbeat(first, 30)
    assert store.finish(first, decide(_outcome(0), first.job, ours=False, retries=2))
    assert store.job(1).state == "done"
    # Taken over by another worker after the lease ran out: that worker's run decides.
    second = store.claim("a", 30, 2)
    store.clock.now += 31
    third = store.claim("b", 30, 2)
    assert third.job.id == second.job.id == 2
    assert not store.finish(second, decide(_outcome(0), second.job, ours=False, retries=2))
    assert store.job(2).state == "running" and store.job(2).worker_id == "b"


def test_a_job_that_keeps_losing_its_worker_fails(store):
    store.add([_spec(1)])
    for _ in range(2):
        store.claim("w", 10, 1)
        store.clock.now += 11
    assert store.claim("w", 10, 1) is None
    job = store.job(1)
    assert job.state == "failed" and job.failures == 2 and job.attempts == 2


def _outcome(returncode: int, error: str | None = None, stopped: bool = False) -> Outcome:
    return Outcome(returncode, error, "", Progress(), stopped)


def test_which_failures_are_retried(store):
    store.add([_spec(1)])
    job = store.claim("w", 30, 2).job
    assert decide(_outcome(0), job, True, 2).state == "done"
    # Bad input is retried as well (a file may still be arriving); the retries end it.
    bad_input = decide(_outcome(2, "x.mkv: damaged or truncated: ..."), job, True, 2)
    assert (bad_input.outcome, bad_input.state, bad_input.failure) == ("retry", "queued", True)
    out_of_retries = decide(_outcome(2, "x.mkv: damaged or truncated: ..."), job, True, 0)
    assert (out_of_retries.outcome, out_of_retries.state) == ("failed", "failed")
    killed = decide(_outcome(-9, "killed by signal 9 (SIGKILL)"), job, True, 2)
    assert (killed.outcome, killed.state) == ("retry", "queued")
    assert decide(_outcome(1, "x"), job, True, 0).state == "failed"  # no retries left
    interrupted = decide(_outcome(130, stopped=True), job, True, 2)  # the worker was stopped: no failure
    assert (interrupted.outcome, interrupted.state, interrupted.failure) == ("interrupted", "queued", False)
    assert decide(_outcome(130, stopped=True), job, False, 2).state is None  # paused or taken: not ours


def test_pause_resume_retry_remove(store):
    store.add([_spec(n) for n in range(1, 5)])
    running = store.claim("w", 30, 2)
    assert [j.state for j in store.pause([1, 2])] == ["paused", "paused"]
    assert not store.heartbeat(running, 30)  # its worker stops the child
    with pytest.raises(UsageError, match="job 3 is queued; resume takes paused jobs"):
        store.resume([2, 3])
    assert store.job(2).state == "paused"  # all or nothing
    assert [j.state for j in store.resume([1, 2])] == ["queued", "queued"]
    with pytest.raises(UsageError, match="job 3 is queued; retry takes failed jobs"):
        store.retry([3])
    with pytest.raises(UsageError, match="no job 9"):
        store.pause([9])
    failed = store.claim("w", 30, 0)
    store.finish(failed, decide(_outcome(1, "boom"), failed.job, True, 0))
    assert store.job(failed.job.id).state == "failed"
    retried = store.retry([failed.job.id])[0]
    assert retried.state == "queued" and retried.failures == 0
    store.remove([4])
    assert [j.id for j in store.jobs()] == [1, 2, 3]
    store.add([_spec(4)])  # its output is free again, and a removed job's id is never reused
    assert store.jobs()[-1].id == 5


# -- add ------------------------------------------------------------------------------------------


def test_add_names_outputs_and_refuses_what_would_fail(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    queue = tmp_path / "q.sqlite"
    for name in ("a.mkv", "b.mkv"):
        (tmp_path / name).write_bytes(b"x")
    specs = plan_jobs([Path("a.mkv")], "2x-conservative", None, [])
    assert specs[0].output == str(tmp_path / "a.2x-conservative.mkv") and specs[0].cwd == str(tmp_path)
    specs = plan_jobs([Path("a.mkv")], "2x-conservative", Path("out"), OPTIONS, priority=3)
    assert specs[0].output == str(tmp_path / "out" / "a.2x-conservative.mkv")
    assert specs[0].options == tuple(OPTIONS) and specs[0].priority == 3

    def add(*argv: str) -> tuple[int, str]:
        code = command.main(["add", "--queue", str(queue), *argv])
        return code, capsys.readouterr().err

    assert add("a.mkv", "b.mkv", "--preset", "2x-conservative", "-o", "out", "--priority", "2", "--", *OPTIONS)[0] == 0
    with QueueStore(queue) as store:
        jobs = store.jobs()
    assert [Path(j.output).name for j in jobs] == ["a.2x-conservative.mkv", "b.2x-conservative.mkv"]
    assert all(j.options == tuple(OPTIONS) and j.priority == 2 for j in jobs)
    (tmp_path / "a.2x-conservative.mkv").write_bytes(b"mine")
    refusals = {
        ("a.mkv", "--preset", "2x-conservative", "-o", "out"): "already in the queue as job 1 (queued)",
        ("a.mkv", "--preset", "2x-conservative"): "a.2x-conservative.mkv: exists; add `-- --overwrite`",
        ("a.mkv", "a.mkv", "--preset", "2x-conservative", "-o", "x"): "two of the inputs would write it",
        ("nope.mkv", "--preset", "2x-conservative"): "nope.mkv: no such file",
        ("b.mkv", "--preset", "2x-conservative", "--", "--crf", "x"): "-- --crf x: argument --crf: invalid float",
        ("b.mkv", "--preset", "2x-conservative", "--", "--bogus"): "unrecognized arguments: --bogus",
        ("b.mkv", "--preset", "2x-conservative", "--", "c.mkv"): "unrecognized arguments: c.mkv",
        ("b.mkv", "--preset", "2x-conservative", "--", "--preset", "4x-conservative"): "-o and --preset go before",
        ("b.mkv", "--preset", "2x-conservative", "--", "--quiet"): "leave --quiet out",
        ("b.mkv", "--preset", "no-such-preset"): "unknown preset",
    }
    for argv, message in refusals.items():
        code, err = add(*argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert add("a.mkv", "--preset", "2x-conservative", "--", "--overwrite")[0] == 0  # replacing is asked for


def test_options_after_double_dash_survive_the_remaster_parser():
    # As remaster.cli nests it: `remaster queue add ...` goes through two levels of subcommands.
    parser = argparse.ArgumentParser(prog="remaster")
    queue = parser.add_subparsers(dest="command").add_parser("queue")
    command.add_queue_arguments(queue)
    args = parser.parse_args(["queue", "add", "a.mkv", "b.mkv", "--preset", "P", "--", "--crf", "18", "--tile", "256"])
    assert args.paths == [Path("a.mkv"), Path("b.mkv")] and args.preset == "P"
    assert args.options == ["--crf", "18", "--tile", "256"]
    args = parser.parse_args(["queue", "add", "--preset", "P", "a.mkv", "--", "-o", "x"])
    assert args.paths == [Path("a.mkv")] and args.options == ["-o", "x"]
    assert parser.parse_args(["queue", "add", "a.mkv", "--preset", "P"]).options == []


def test_status_json_and_log(tmp_path, capsys, monkeypatch):
    queue = tmp_path / "q.sqlite"
    assert command.main(["status", "--json", "--queue", str(queue)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with QueueStore(queue) as store:
        store.add([_spec(1), _spec(2)])
        claim = store.claim("w", 30, 2)
        store.heartbeat(claim, 30, Progress(pid=7, frames_done=6, frames_total=24, fps=3.0, eta_seconds=6.0))
    assert command.main(["status", "--json", "--queue", str(queue)]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert [(j["id"], j["state"], j["attempts"], j["progress"], j["eta_seconds"]) for j in jobs] == [
        (1, "running", 1, 0.25, 6.0),
        (2, "queued", 0, None, None),
    ]
    assert {"input", "output", "error", "frames_done", "frames_total", "fps"} <= set(jobs[0])
    monkeypatch.setattr(actions, "TABLE_ROWS", 1)
    assert command.main(["status", "--queue", str(queue)]) == 0
    out = capsys.readouterr().out
    assert "25%" in out and "1 running, 1 queued; 1 more not shown" in out
    assert command.main(["log", "1", "--queue", str(queue)]) == 0
    out = capsys.readouterr().out
    assert "job 1: /in/1.mkv -> /out/1.mkv" in out and "run 1:" in out and "running" in out
    assert command.main(["log", "9", "--queue", str(queue)]) == 2
    assert "no job 9" in capsys.readouterr().err


def test_an_output_written_since_the_job_was_added_is_not_written_again(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr("remaster.scaleout.queue.worker.run_job", lambda job, *a: ran.append(job.id) or _outcome(0))
    old, new = tmp_path / "old.mkv", tmp_path / "new.mkv"
    old.write_bytes(b"there before the job was added (with --overwrite among its options)")
    os.utime(old, (time.time() - 60, time.time() - 60))
    with QueueStore(tmp_path / "q.sqlite") as store:
        store.add(
            [JobSpec(str(tmp_path / "in.mkv"), str(path), "2x-conservative", str(tmp_path)) for path in (old, new)]
        )
        new.write_bytes(b"written by a run of job 2 whose worker died before it could record it")
        os.utime(new, (time.time() + 1, time.time() + 1))  # the kernel's coarse file clock may read older
        worker = Worker(store, WorkerOptions())
        assert worker.run_one().outcome == "done" and ran == [1]  # older than its job: replaced
        assert worker.run_one().outcome == "done" and ran == [1]  # newer: taken as the job's own
        assert "not run again" in store.claims(2)[0].log


def test_run_job_reports_the_childs_error(tmp_path):
    with QueueStore(tmp_path / "q.sqlite") as store:
        spec = JobSpec(str(tmp_path / "gone.mkv"), str(tmp_path / "o.mkv"), "2x-conservative", str(tmp_path))
        job = store.add([spec])[0]
    reports: list[Progress] = []
    outcome = run_job(job, (), lambda progress: reports.append(progress) or True, lambda: False)
    assert outcome.returncode == 2 and not outcome.stopped
    assert "gone.mkv" in outcome.error and outcome.log.startswith("remaster: error: ")
    assert reports and reports[0].pid is not None


# -- real workers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("episodes")
    made = {name: make_episode(folder / f"{name}.mkv", SPEC) for name in ("ep1", "ep2", "ep3")}
    # Opens, then runs out of frames: the child refuses it with exit code 2 ("damaged or truncated").
    data = made["ep1"].read_bytes()
    made["broken"] = folder / "broken.mkv"
    made["broken"].write_bytes(data[: len(data) * 6 // 10])
    return made


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _add(queue: Path, paths: list[Path], out: Path) -> None:
    # The cheapest packaged model: what is tested is the queue, not the picture.
    assert command.main(["add", *map(str, paths), *FAST_MODEL, "-o", str(out),
                         "--queue", str(queue), "--", *OPTIONS]) == 0  # fmt: skip


def _start_worker(queue: Path, log: Path, *extra: str) -> subprocess.Popen:
    with log.open("ab") as sink:
        argv = [sys.executable, "-m", "remaster.scaleout.queue", "run", "--queue", str(queue), *extra]
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=ENV)


def _wait_for(condition, timeout: float = 120.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"  # a zombie nobody reaped
    except FileNotFoundError:
        return True


def _check_outputs(jobs, episodes_by_input: dict[str, Path]) -> None:
    for job in jobs:
        assert _frames(Path(job.output)) == _frames(episodes_by_input[job.input]), job


@pytest.mark.slow
def test_a_child_killed_by_a_signal_is_retried(episodes, tmp_path):
    queue = tmp_path / "q.sqlite"
    _add(queue, [episodes["ep1"]], tmp_path / "out")
    worker = _start_worker(queue, tmp_path / "worker.log", "--lease", "5")
    try:
        with QueueStore(queue) as store:
            pid = _wait_for(lambda: store.job(1).pid, what="the child to start")
            os.kill(pid, signal.SIGKILL)
            assert worker.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()
            job = store.job(1)
            runs = store.claims(1)
    finally:
        worker.kill()
    assert (job.state, job.attempts, job.failures) == ("done", 2, 1)
    assert [(run.outcome, run.exit_code, run.error) for run in runs] == [
        ("retry", -9, "killed by signal 9 (SIGKILL)"),
        ("done", 0, None),
    ]
    _check_outputs([job], {str(episodes["ep1"]): episodes["ep1"]})


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_taken_over_without_running_anything_twice(episodes, tmp_path):
    queue = tmp_path / "q.sqlite"
    order = [episodes[name] for name in ("ep1", "broken", "ep2", "ep3")]
    _add(queue, order, tmp_path / "out")
    log = tmp_path / "workers.log"
    first = _start_worker(queue, log, "--lease", "3")
    try:
        with QueueStore(queue) as store:

            def midway():
                running = [j for j in store.jobs() if j.state == "running" and j.id >= 3]
                return running and 0 < (running[0].frames_done or 0) < running[0].frames_total and running[0]

            victim = _wait_for(midway, what="a job halfway")
            before = {
                j.id: (j.finished_at, Path(j.output).stat().st_mtime_ns) for j in store.jobs() if j.state == "done"
            }
            first.send_signal(signal.SIGKILL)
            first.wait()
            _wait_for(lambda: _gone(victim.pid), timeout=10, what="the child to die with its worker")
            assert store.job(victim.id).state == "running"  # until its lease runs out
            second = _start_worker(queue, log, "--lease", "3")
            assert second.wait(timeout=180) == 0, log.read_text()
            jobs = {j.id: j for j in store.jobs()}
            runs = {j: [run.outcome for run in store.claims(j)] for j in jobs}
    finally:
        first.kill()
    assert 1 in before  # the first episode was done before the kill, and left alone after it
    for job_id, (finished_at, mtime) in before.items():
        assert jobs[job_id].finished_at == finished_at
        assert Path(jobs[job_id].output).stat().st_mtime_ns == mtime
    broken = jobs[2]
    assert (broken.state, broken.attempts, runs[2]) == ("failed", 3, ["retry", "retry", "failed"])
    assert "damaged or truncated" in broken.error
    assert runs[victim.id] == ["lost", "done"] and jobs[victim.id].attempts == 2
    for job_id in (1, 3, 4):
        assert jobs[job_id].state == "done" and runs[job_id].count("done") == 1
        assert runs[job_id] == (["lost", "done"] if job_id == victim.id else ["done"])
    _check_outputs([jobs[j] for j in (1, 3, 4)], {str(path): path for path in order})


@pytest.mark.slow
def test_workers_started_together_run_each_job_exactly_once(episodes, tmp_path):
    queue = tmp_path / "q.sqlite"
    order = [episodes[name] for name in ("ep1", "ep2", "ep3")]
    _add(queue, order, tmp_path / "out")
    log = tmp_path / "workers.log"
    # Three workers in all: two in one `run --workers 2`, one more beside it (as on a second GPU).
    workers = [_start_worker(queue, log, "--workers", "2"), _start_worker(queue, log)]
    try:
        assert [worker.wait(timeout=180) for worker in workers] == [0, 0], log.read_text()
    finally:
        for worker in workers:
            worker.kill()
    with QueueStore(queue) as store:
        jobs = store.jobs()
        runs = [run for job in jobs for run in store.claims(job.id)]
    assert [job.state for job in jobs] == ["done"] * 3
    assert sorted(run.job_id for run in runs) == [1, 2, 3] and {run.outcome for run in runs} == {"done"}
    assert len({run.worker_id for run in runs}) >= 2
    _check_outputs(jobs, {str(path): path for path in order})


@pytest.mark.slow
def test_pausing_a_running_job_and_stopping_the_worker_requeue_without_failures(tmp_path):
    queue = tmp_path / "q.sqlite"
    # Four seconds each, so that the pause reaches job 1, and the stop job 2, while it runs, however
    # fast the model is.
    order = [make_episode(tmp_path / f"long{n}.mkv", replace(SPEC, seconds=4.0)) for n in (1, 2)]
    _add(queue, order, tmp_path / "out")
    log = tmp_path / "workers.log"
    q = ["--queue", str(queue)]
    worker = _start_worker(queue, log, "--lease", "4")  # a heartbeat a second: a pause is seen within one
    try:
        with QueueStore(queue) as store:

            def running(job_id: int):
                job = store.job(job_id)
                return job.state == "running" and (job.frames_done or 0) > 0 and job

            first = _wait_for(lambda: running(1), what="job 1 to run")
            assert command.main(["pause", "1", *q]) == 0
            second = _wait_for(lambda: running(2), what="the worker to stop job 1 and go on")
            _wait_for(lambda: _gone(first.pid), timeout=10, what="job 1's child to stop")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 130, log.read_text()
            assert _gone(second.pid)
            jobs = store.jobs()
            assert [(j.state, j.failures, j.error) for j in jobs] == [("paused", 0, None), ("queued", 0, None)]
            assert [store.claims(j.id)[0].outcome for j in jobs] == ["stopped", "interrupted"]
            assert command.main(["resume", "1", *q]) == 0
            again = _start_worker(queue, log, "--lease", "4")
            assert again.wait(timeout=120) == 0, log.read_text()
            jobs = store.jobs()
            runs = [[run.outcome for run in store.claims(j.id)] for j in jobs]
    finally:
        worker.kill()
    assert [j.state for j in jobs] == ["done", "done"]
    assert runs == [["stopped", "done"], ["interrupted", "done"]]
    _check_outputs(jobs, {str(path): path for path in order})


def test_worker_options_reach_every_child_last():
    """`queue run --device/--ray` win over a job's own options: they come after them."""
    from remaster.scaleout.queue.child import child_command
    from remaster.scaleout.queue.worker import WorkerOptions

    options = WorkerOptions(device="cuda:1", ray="auto", ray_gpus=0.5)
    assert options.child_args() == ["--device", "cuda:1", "--ray", "auto", "--ray-gpus", "0.5"]
    job = SimpleNamespace(input="in.mkv", output="out.mkv", preset="2x-conservative", options=["--device", "cpu"])
    command = child_command(job, options.child_args())
    assert command[-9:] == [
        "--device",
        "cpu",
        "--device",
        "cuda:1",
        "--ray",
        "auto",
        "--ray-gpus",
        "0.5",
        "--json-progress",
    ]


def test_run_places_one_worker_per_listed_device():
    assert command._worker_devices("cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    assert command._worker_devices(None) == [None]
    gpus = __import__("torch").cuda.device_count()
    if gpus:  # `all`: every GPU PyTorch sees (without one, the test below)
        assert command._worker_devices("all") == [f"cuda:{i}" for i in range(gpus)]


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 0, reason="this machine has a CUDA GPU for --device all")
def test_device_all_without_a_gpu_is_one_line(tmp_path, capsys):
    queue = tmp_path / "queue.db"
    assert command.main(["run", "--device", "all", "--queue", str(queue)]) == 2
    assert "--device all: no CUDA GPU is available to PyTorch here" in capsys.readouterr().err


# -- damaged rows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "damage", "problem"),
    [
        ("options", "'{[not json'", "options is not JSON ('{[not json')"),
        ("input", "CAST(X'2F696E2F00612E6D6B76' AS BLOB)", "input is a BLOB, not text (b'/in/\\x00a.mkv')"),
        ("input", "CAST(X'2F696E2F00612E6D6B76' AS TEXT)", "input holds a NUL byte ('/in/\\x00a.mkv')"),
        ("output", "CAST(X'2F6F75742FFF2E6D6B76' AS TEXT)", "output is not UTF-8 text (b'/out/\\xff.mkv')"),
    ],
)
def test_one_damaged_row_fails_alone_and_the_rest_run(tmp_path, capsys, column, damage, problem):
    # A real queue file whose job 2 was damaged in place by another tool: the jobs around it run, it
    # fails with one line naming it and what is wrong, and status, status --json and log show it.
    queue = tmp_path / "q.sqlite"
    outputs = [tmp_path / f"{n}.mkv" for n in (1, 2, 3)]
    with QueueStore(queue) as store:
        store.add([JobSpec(str(tmp_path / "in.mkv"), str(out), "2x-conservative", str(tmp_path)) for out in outputs])
    later = time.time() + 1  # the kernel stamps files from a coarse clock: a file written just now
    for out in outputs:  # may read older than the job. Written since it was added: done without a child
        out.write_bytes(b"output")
        os.utime(out, (later, later))
    with sqlite3.connect(queue) as db:
        db.execute(f"UPDATE jobs SET {column} = {damage} WHERE id = 2")
    line = f"damaged queue row: {problem}; fix or remove it (`remaster queue remove 2`)"
    assert command.main(["status", "--queue", str(queue)]) == 0
    assert "failed" in capsys.readouterr().out
    assert command.main(["run", "--queue", str(queue)]) == 1  # a job failed
    out, err = capsys.readouterr()
    assert f"job 2: failed: {line}" in err and "2 done, 1 failed" in out, (out, err)
    assert command.main(["status", "--json", "--queue", str(queue)]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert [(job["id"], job["state"], job["error"]) for job in jobs] == [(1, "done", None), (2, "failed", line),
                                                                          (3, "done", None)]  # fmt: skip
    with sqlite3.connect(queue) as db:
        assert db.execute("SELECT state, error FROM jobs WHERE id = 2").fetchone() == ("failed", line)
    assert command.main(["log", "2", "--queue", str(queue)]) == 0
    assert f"failed: {line}" in capsys.readouterr().out
    assert command.main(["remove", "2", "--queue", str(queue)]) == 0

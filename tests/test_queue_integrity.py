"""A queue file with real damaged bytes: refused in one line, left as it was, and its readable jobs
saved with `queue export` and put into a fresh file with `queue import`."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from remaster.cli import main
from remaster.scaleout.queue.store import Ending, JobSpec, QueueStore

JOBS = 200
PAGE = 4096  # SQLite's default page size, which the queue keeps
LEAF_HEADER = 8  # a table leaf page's header; its cell pointer array follows (sqlite.org/fileformat.html)


def make_queue(path: Path) -> list[dict]:
    """A queue of JOBS jobs in several states, closed (its WAL checkpointed into the file)."""
    with QueueStore(path) as store:
        specs = [
            JobSpec(f"/videos/ep{n:05d}.mkv", f"/out/ep{n:05d}.mkv", "2x-conservative", "/work", ("--crf", "18"))
            for n in range(1, JOBS + 1)
        ]
        store.add(specs)
        done = store.claim("w1", 30, 2)
        store.finish(done, Ending("done", "done", exit_code=0))
        store.claim("w1", 30, 2)  # left running: its worker is gone for good
        store.pause([10])
        return [dict(json_job) for json_job in json.loads(store.jobs_json())]


def damage_page_of(path: Path, text: bytes) -> None:
    """Overwrite the cell pointers of the table page that holds `text` with random bytes: a real
    damaged page, as a bad sector or a torn write leaves one (not the file header)."""
    data = bytearray(path.read_bytes())
    start = data.index(text) // PAGE * PAGE + LEAF_HEADER
    assert start > PAGE, "the damage must be in a data page, not in page 1 with the file header"
    noise = random.Random(12)
    data[start : start + 64] = bytes(noise.randrange(256) for _ in range(64))
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged(tmp_path):
    queue = tmp_path / "queue.sqlite"
    jobs = make_queue(queue)
    damage_page_of(queue, b"/videos/ep00150.mkv")
    return queue, jobs


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "action",
    [["add", "{video}", "--preset", "2x-conservative"], ["status"], ["status", "--json"], ["run"], ["retry", "3"],
     ["pause", "5"], ["remove", "5"], ["log", "5"]],
)  # fmt: skip
def test_a_damaged_queue_is_refused_in_one_line_and_left_as_it_was(damaged, tmp_path, capsys, action):
    queue, _ = damaged
    video = tmp_path / "new.mkv"
    video.write_bytes(b"not probed when queued")
    before = _files(tmp_path)
    argv = ["queue", *(a.format(video=video) for a in action), "--queue", str(queue)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"remaster: error: {queue}: the queue file is damaged (")
    assert f"remaster queue export jobs.json --queue {queue}" in err
    assert _files(tmp_path) == before  # not a byte written, no -wal or -shm left beside it


def test_export_and_import_recover_the_readable_jobs(damaged, tmp_path, capsys):
    queue, jobs = damaged
    saved = tmp_path / "jobs.json"
    before = queue.read_bytes()
    assert main(["queue", "export", str(saved), "--queue", str(queue)]) == 0
    note = capsys.readouterr().err
    assert queue.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["jobs.json", "queue.sqlite"]
    exported = json.loads(saved.read_text())
    ids = {job["id"] for job in exported}
    lost = sorted({job["id"] for job in jobs} - ids)
    # One page of about 30 rows is lost, every other job is there, and the note names the lost ones.
    assert 0 < len(lost) < 40 and 150 in lost
    assert f"exported {len(exported)} jobs from {queue} to {saved}" in note
    # Named as unreadable (SQLite or the checks refused the row) or as not found (no row with that id).
    assert sum(int(n) for n in re.findall(r"(\d+) jobs? \(id ", note)) == len(lost)
    assert f"(id {lost[0]}," in note

    fresh = tmp_path / "fresh.sqlite"
    assert main(["queue", "import", str(saved), "--queue", str(fresh)]) == 0
    with QueueStore(fresh, create=False) as store:
        restored = {job.id: job for job in store.jobs()}
    assert set(restored) == ids
    for job in jobs:
        if job["id"] in ids:
            got = restored[job["id"]]
            assert (got.input, got.output, got.cwd) == (job["input"], job["output"], "/work")
            assert got.options == ("--crf", "18")
            # A job that was running comes back queued: its worker went with the old file.
            assert got.state == ("queued" if job["state"] == "running" else job["state"])
    assert {restored[1].state, restored[2].state, restored[10].state} == {"done", "queued", "paused"}
    # The fresh queue works: a new job gets the next id.
    video = tmp_path / "new.mkv"
    video.write_bytes(b"x")
    assert main(["queue", "add", str(video), "--preset", "2x-conservative", "--queue", str(fresh)]) == 0
    assert f"queued job {JOBS + 1}:" in capsys.readouterr().out


def test_import_makes_a_fresh_file_only(tmp_path, capsys):
    queue = tmp_path / "queue.sqlite"
    make_queue(queue)
    saved = tmp_path / "jobs.json"
    assert main(["queue", "export", str(saved), "--queue", str(queue)]) == 0
    assert main(["queue", "export", str(saved), "--queue", str(queue)]) == 2  # never replaces a file
    before = queue.read_bytes()
    assert main(["queue", "import", str(saved), "--queue", str(queue)]) == 2
    assert "exists; import makes a fresh queue file" in capsys.readouterr().err
    assert queue.read_bytes() == before
    # A list with a bad job is refused whole, and leaves no file behind.
    jobs = json.loads(saved.read_text())
    jobs[3]["state"] = "finished"
    saved.write_text(json.dumps(jobs))
    fresh = tmp_path / "fresh.sqlite"
    assert main(["queue", "import", str(saved), "--queue", str(fresh)]) == 2
    assert "job 4 of the list: state is 'finished'" in capsys.readouterr().err
    assert not fresh.exists()


def test_damage_met_while_working_is_one_line_too(tmp_path):
    """An index entry changed in place: the pages are sound (quick_check passes), but the index no
    longer matches its table, and SQLite finds it only when a change touches that row."""
    queue = tmp_path / "queue.sqlite"
    make_queue(queue)
    data = bytearray(queue.read_bytes())
    at = data.rindex(b"/out/ep00150.mkv")  # the index's copy comes after the table's
    data[at + len("/out/ep00150.mk")] = ord("x")
    queue.write_bytes(bytes(data))
    run = subprocess.run(
        [sys.executable, "-m", "remaster", "queue", "remove", "150", "--queue", str(queue)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.startswith(f"remaster: error: {queue}: the queue file is damaged (database disk image is")
    assert run.stderr.count("\n") == 1

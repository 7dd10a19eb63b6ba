"""`remaster queue ACTION`: the actions' options; `remaster.scaleout.queue.actions` does and prints the rest.
`python -m remaster.scaleout.queue` is the same command on its own."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from remaster.commands.options import command_parser
from remaster.core.errors import RemasterError, UsageError
from remaster.scaleout.queue.store import TABLE_ROWS, database_error, default_queue_path

NAME = "queue"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = command_parser(subparsers, NAME, help="a queue of video jobs: add, status, run, retry, pause, log...")
    add_queue_arguments(parser)


class _ActionParser(argparse.ArgumentParser):
    """With `pass_through`, everything after `--` is kept apart, untouched, as `options`: argparse alone
    would take `--crf 18` after `--` for more paths."""

    def __init__(self, *args: object, pass_through: bool = False, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.pass_through = pass_through

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        options: list[str] = []
        if self.pass_through and "--" in args:
            cut = args.index("--")
            args, options = args[:cut], args[cut + 1 :]
        namespace, extras = super().parse_known_args(args, namespace)
        if self.pass_through:
            namespace.options = options
        return namespace, extras


def add_queue_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions of `remaster queue`, on the parser that `remaster` gives the command."""
    actions = parser.add_subparsers(dest="queue_action", required=True, metavar="ACTION", parser_class=_ActionParser)

    def action(name: str, description: str, **kwargs: object) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=description, description=description, **kwargs)
        sub.add_argument("--queue", type=Path, metavar="FILE", help=f"the queue (default: {default_queue_path()})")
        return sub

    add = action(
        "add",
        "queue videos; options after -- go to remaster as they are (e.g. -- --crf 18 --tile 256)",
        pass_through=True,
        usage="%(prog)s PATH... --preset NAME [-o DIR] [--priority N] [-- REMASTER OPTIONS...]",
    )
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="video files")
    add.add_argument("--preset", required=True, help="see `remaster presets`")
    add.add_argument("-o", "--output", type=Path, metavar="DIR", help="a folder (default: beside each input)")
    add.add_argument("--priority", type=int, default=0, help="higher runs first (default: 0, in the order added)")

    status = action("status", "list the jobs with their progress")
    status.add_argument("--json", action="store_true", help="a JSON list of all jobs on stdout")
    status.add_argument("--all", action="store_true", help=f"every job in the table, not the first {TABLE_ROWS}")

    run = action("run", "run queued jobs until none is left; start one per GPU to share a queue")
    run.add_argument(
        "--device",
        help="passed to every job; a comma list (cuda:0,cuda:1) or all (every CUDA GPU) goes round the workers",
    )
    run.add_argument(
        "--workers", type=int, help="jobs at a time, a process each (default: one per device of --device, else 1)"
    )
    run.add_argument("--watch", action="store_true", help="keep waiting for new jobs")
    run.add_argument(
        "--ray", metavar="ADDRESS", help="spread each job's segments over a Ray cluster: local, auto or ray://HOST:PORT"
    )
    run.add_argument("--ray-gpus", type=float, help="GPUs per Ray task (default: 1 where the cluster has GPUs)")
    run.add_argument(
        "--retries", type=int, default=2,
        help="runs again after a failure, bad input included (default: %(default)s)",
    )  # fmt: skip
    run.add_argument(
        "--lease", type=float, default=30.0, metavar="SECONDS",
        help="a worker silent this long is taken for dead and its job taken over (default: %(default)s)",
    )  # fmt: skip

    for name, description in (
        ("retry", "queue failed jobs again"),
        ("remove", "forget jobs (a running one is stopped; files are left alone)"),
        ("pause", "hold jobs back (a running one is stopped, keeping its finished segments)"),
        ("resume", "queue paused jobs again"),
    ):
        action(name, description).add_argument("ids", nargs="+", type=int, metavar="ID")
    action("log", "a job's runs: times, outcomes and the end of remaster's messages").add_argument(
        "id", type=int, metavar="ID"
    )
    action(
        "export", "write the jobs as JSON; from a damaged queue file, every job that can still be read"
    ).add_argument("file", nargs="?", type=Path, metavar="FILE", help="a new file (default: stdout)")
    action(
        "import", "make a fresh queue file (--queue) with the jobs of a JSON file from export or status --json"
    ).add_argument("file", type=Path, metavar="FILE")


def run(args: argparse.Namespace) -> int:
    """Run one `remaster queue` action; returns the exit code. An SQLite error (a file damaged after
    it was opened, a full disk) is a one-line RemasterError, never a traceback."""
    path = args.queue or default_queue_path()
    try:
        return _action(path, args)
    except sqlite3.Error as exc:
        raise database_error(path, exc) from None


def _action(path: Path, args: argparse.Namespace) -> int:
    # Imported here: the actions bring rich and the worker, which the other commands never need.
    from remaster.scaleout.queue import actions

    if args.queue_action == "export":
        return actions.export(path, args.file)
    if args.queue_action == "import":
        return actions.import_from(path, args.file)
    if args.queue_action == "add":
        return actions.add(path, args.paths, args.preset, args.output, args.options, args.priority)
    if args.queue_action == "status":
        return actions.status(path, args.json, args.all)
    if args.queue_action == "run":
        return _run(path, args)
    if args.queue_action == "log":
        return actions.log(path, args.id)
    return actions.change(path, args.queue_action, args.ids)


def _run(path: Path, args: argparse.Namespace) -> int:
    devices = _worker_devices(args.device)
    workers = len(devices) if args.workers is None else args.workers
    if workers < 1:
        raise UsageError(f"--workers {workers}: want 1 or more")
    if args.retries < 0:
        raise UsageError(f"--retries {args.retries}: want 0 or more")
    if args.lease < 1:
        raise UsageError(f"--lease {args.lease:g}: want 1 second or more")
    from remaster.scaleout.queue.worker import WorkerOptions

    options = WorkerOptions(
        retries=args.retries, lease_seconds=args.lease, watch=args.watch, ray=args.ray, ray_gpus=args.ray_gpus
    )
    from remaster.scaleout.queue import actions

    return actions.run(path, workers, options, devices)


def _worker_devices(value: str | None) -> list[str | None]:
    """The device each worker in turn passes to its jobs: one job per GPU with `all` or a list."""
    if not value:
        return [None]
    if value != "all":
        return value.split(",")
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise UsageError("--device all: no CUDA GPU is available to PyTorch here")
    return [f"cuda:{i}" for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    """`python -m remaster.scaleout.queue`: the same as `remaster queue`, with the same errors and exit codes."""
    parser = argparse.ArgumentParser(prog="remaster queue", description="A queue of video jobs.")
    add_queue_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RemasterError as exc:
        print(f"remaster: error: {exc}", file=sys.stderr)
        return exc.exit_code

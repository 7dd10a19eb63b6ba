"""Modes are StrEnums parsed once, at the command line: a wrong value is one line listing the valid
ones, found when the options are read (queue add included), and files keep the same strings."""

from __future__ import annotations

import json

import pytest

from remaster.cli import build_parser, main
from remaster.commands import queue as queue_command
from remaster.core.precision import Precision
from remaster.scaleout.queue.store import JobState, QueueStore
from remaster.video.fields import FieldMode
from remaster.video.reuse import ReuseMode


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["video", "in.mkv", "--precision", "fp8"], "--precision 'fp8': want one of auto, fp32, bf16, fp16"),
        (["image", "in.png", "--precision", "fp8"], "--precision 'fp8': want one of auto, fp32, bf16, fp16"),
        (["compare", "in.png", "--precision", "fp8"], "--precision 'fp8': want one of auto, fp32, bf16, fp16"),
        (["video", "in.mkv", "--reuse", "always"], "--reuse 'always': want one of auto, exact, off"),
        (["video", "in.mkv", "--fields", "bob"], "--fields 'bob': want one of auto, progressive, deinterlace, ivtc"),
    ],
)
def test_a_wrong_mode_is_one_line_listing_the_valid_ones(argv, expected, capsys):
    # argparse's `choices` printed its usage lines first; nothing is read before the options are.
    assert main(argv) == 2
    assert capsys.readouterr().err == f"remaster: error: {expected}\n"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--reuse", "always"], "--reuse 'always': want one of auto, exact, off"),
        (["--fields", "bob"], "--fields 'bob': want one of auto, progressive, deinterlace, ivtc"),
    ],
)
def test_queue_add_refuses_a_wrong_mode_before_queueing(option, expected, tmp_path, monkeypatch, capsys):
    # These were checked only when the job ran: `queue add` took them, and every job failed.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mkv").write_bytes(b"x")
    queue = tmp_path / "q.sqlite"
    argv = ["add", "--queue", str(queue), "a.mkv", "--preset", "2x-conservative", "--", *option]
    assert queue_command.main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.rstrip().endswith(expected), error
    if queue.exists():
        with QueueStore(queue) as store:
            assert store.jobs() == []


def test_modes_are_parsed_to_their_enums_and_written_as_the_same_strings():
    args = build_parser().parse_args(["video", "in.mkv", "--reuse", "exact", "--fields", "ivtc", "--precision", "bf16"])
    assert (args.reuse, args.fields, args.precision) == (ReuseMode.EXACT, FieldMode.IVTC, Precision.BF16)
    assert type(args.fields) is FieldMode
    defaults = build_parser().parse_args(["video", "in.mkv"])
    assert (defaults.reuse, defaults.fields, defaults.precision) == ("auto", "auto", "auto")
    # The manifest and --json-progress write modes as plain strings, as before.
    assert json.dumps({"reuse": args.reuse, "state": JobState.DONE}) == '{"reuse": "exact", "state": "done"}'

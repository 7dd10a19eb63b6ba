"""The ETA: from the model's own rate in this run, steady through warm-up, checkpoints and held drawings.

Every test feeds a synthetic timeline (times and frame counts given explicitly, nothing sleeps) and
compares the estimate with the time the timeline really has left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from remaster.video.progress import ETA_WINDOW_FRAMES, ETA_WINDOW_SECONDS, EtaEstimator, JsonProgress


@dataclass(frozen=True)
class Report:
    time: float  # when the frames were written
    frames: int
    held: int  # of those, frames that reused a held drawing


@dataclass(frozen=True)
class Timeline:
    total: int
    checkpointed: int  # frames an earlier run finished
    reports: list[Report]

    @property
    def end(self) -> float:
        return self.reports[-1].time


def episode(
    *,
    total: int = 1440,
    checkpointed: int = 360,
    seconds_per_frame: float = 2.0,
    warm_up: float = 45.0,
    held_every: int = 4,
    still_at: int | None = 540,
    still_frames: int = 48,
    held_cost: float = 0.05,
    faster_from: int | None = None,
) -> Timeline:
    """One minute of 24 fps video, a quarter of it finished by an earlier run, through a model that
    takes `seconds_per_frame` (the first frame `warm_up`: loading, first-call allocation). Every
    `held_every`-th frame is a held drawing, and a two-second still scene of `still_frames` held
    frames comes at frame `still_at` of this run; a held frame costs `held_cost` (decode, compare,
    encode). From frame `faster_from` on, the model takes half as long (another job left the GPU).
    Reports come as the pipeline makes them with --batch 1: the held frames go out with the next
    computed one."""
    t, index, pending, first = 0.0, 0, 0, True
    reports = []
    while checkpointed + index < total:
        if index == still_at:
            t += still_frames * held_cost
            index += still_frames
            pending += still_frames
            continue
        if index % held_every == held_every - 1:
            t += held_cost
            index += 1
            pending += 1
            continue
        speed = seconds_per_frame / 2 if faster_from is not None and index >= faster_from else seconds_per_frame
        t += warm_up if first else speed
        first = False
        index += 1
        reports.append(Report(t, 1 + pending, pending))
        pending = 0
    if pending:  # held frames at the very end go out when the segment ends
        reports.append(Report(t, pending, pending))
    return Timeline(total, checkpointed, reports)


def replay(timeline: Timeline) -> list[tuple[Report, float | None, float]]:
    """(report, the estimate just after it, the seconds the timeline really had left then)."""
    eta = EtaEstimator(timeline.total)
    eta.checkpointed(timeline.checkpointed)
    rows = []
    for report in timeline.reports:
        eta.add(report.time, report.frames, report.held)
        rows.append((report, eta.seconds_left(), timeline.end - report.time))
    return rows


def test_unknown_until_the_model_has_been_timed_past_its_first_frame():
    rows = replay(episode())
    assert rows[0][1] is None  # the first report only starts the clock: its 45 s are warm-up
    assert all(left is not None for _, left, _ in rows[1:])


def test_steady_rate_with_warm_up_checkpoints_and_held_drawings_stays_within_bounds():
    rows = replay(episode())
    # From the 20th model frame (40 s after the warm-up) while more than a minute is left. The
    # largest error is just before the still scene, which the estimate cannot know of: its 48
    # frames would take 48 x 3/4 x 2 s = 72 s at the rate and share seen, 10% of the 740 s left
    # then. The old estimate (frames done in this run, held ones included, over all the time since
    # the start, warm-up included) was 3.2x the truth at the 10th model frame and 1.4x at the 60th.
    for report, left, truth in rows[20:]:
        if truth > 60:
            assert abs(left - truth) <= 0.12 * truth, (report, left, truth)
    # No jumps: between two reports the estimate never goes up by more than 5%.
    for (_, before, _), (report, after, _) in zip(rows[5:], rows[6:], strict=False):
        assert after <= 1.05 * before, (report, before, after)


def test_a_still_scene_is_not_speed():
    timeline = episode()
    eta = EtaEstimator(timeline.total)
    eta.checkpointed(timeline.checkpointed)
    for report in timeline.reports:
        eta.add(report.time, report.frames, report.held)
        if report.held > 10:  # the still scene: 48 held frames come out with one computed frame
            break
        rate_before, fps_before = eta.model_fps(), eta.fps()
    # The model's rate: 1 frame / 2 s, less the held frames' 0.05 s each, which are charged to it.
    assert rate_before == pytest.approx(0.5, rel=0.01)
    # The still scene is no speed: its 2.4 s are charged to the model too, so the rate over the
    # last minute goes down a little, never up.
    assert 0.95 * rate_before <= eta.model_fps() <= rate_before
    # The frames a second the run keeps up count held drawings at the share seen so far (3 in 4
    # computed: 0.66 fps); 48 more held frames move that share, not the speed: 0.69 fps, where
    # taking the 49 frames of the scene's report (4.4 s after the one before) as speed would say 11 fps.
    assert fps_before == pytest.approx(rate_before * 4 / 3, rel=0.01)
    assert eta.fps() < 1.1 * fps_before


def test_a_change_of_speed_shows_within_the_window():
    # From frame 400 of the run (300 computed, 100 held) the model takes 1 s a frame, not 2.
    timeline = episode(faster_from=400, still_at=None)
    computed, change = 0, None
    for report in timeline.reports:
        computed += report.frames - report.held
        if computed > 300:
            change = report.time
            break
    # Once the window (a minute, and at least 10 frames: 10 s at the new speed) holds only the new
    # speed, the estimate is right again.
    settled = change + max(ETA_WINDOW_SECONDS, ETA_WINDOW_FRAMES * 1.0)
    after = [(left, truth) for report, left, truth in replay(timeline) if report.time > settled and truth > 30]
    assert len(after) > 100
    for left, truth in after:
        assert abs(left - truth) <= 0.05 * truth, (left, truth)


def test_whole_segments_reported_at_once():
    # Ray workers report a whole segment when it is finished: 48 frames every 96 s.
    eta = EtaEstimator(480)
    eta.add(120.0, 48)  # first segment: warm-up included
    assert eta.seconds_left() is None
    for n in range(2, 6):
        eta.add(120.0 + 96 * (n - 1), 48)
        assert eta.seconds_left() == pytest.approx((480 - 48 * n) * 2.0)


def test_json_progress_carries_the_same_eta(capsys):
    timeline = episode()
    clock = iter(report.time for report in timeline.reports)
    progress = JsonProgress(clock=lambda: next(clock))
    progress.start("in.mkv", "out.mkv", timeline.total, 30, [0, 1, 2, 3, 4, 5, 6, 7, 8])
    progress.reused(timeline.checkpointed)
    progress.segment_started(9, 48)
    for report in timeline.reports:
        progress.frames_done(report.frames, report.held)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shown = [e for e in events if e["event"] == "progress"]
    expected = replay(timeline)
    assert len(shown) == len(expected)
    for event, (_, left, _) in zip(shown, expected, strict=True):
        assert event["eta_seconds"] == (None if left is None else round(left, 1))
    assert shown[0]["frames_done"] == timeline.checkpointed + timeline.reports[0].frames
    assert shown[-1]["frames_done"] == timeline.total

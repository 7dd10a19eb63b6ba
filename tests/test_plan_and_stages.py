"""The job's plan is one value, and the stages are objects that can be fed messages by hand:
planes made here, no media file read."""

from __future__ import annotations

import dataclasses
import json
import pickle
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from remaster.core.errors import DamagedInput
from remaster.core.precision import Precision
from remaster.core.presets import get_preset
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model
from remaster.video.checkpoint import MANIFEST_NAME, WorkDir
from remaster.video.colour import ColourSpec
from remaster.video.decode import DecodeStats, Planes
from remaster.video.encode import EncoderSettings, OutputColour, VideoFormat
from remaster.video.pipeline import Remasterer
from remaster.video.plan import OutputFrame, VideoSettings, plan_job, resolve_engine
from remaster.video.progress import QuietProgress
from remaster.video.reuse import ReuseMode
from remaster.video.segments import Segment
from remaster.video.stages import (
    Decoded,
    EncodeStage,
    HeldDrawings,
    Marked,
    OutputPlanes,
    SegmentEnd,
    SegmentStart,
    Upscaled,
    UpscaleStage,
    run_stages,
)


def _settings(tmp_path: Path, **extra) -> VideoSettings:
    encoder = EncoderSettings(codec="x264").resolved()
    engine = EngineSettings("cpu", "fp32", "0")
    preset = get_preset("2x-conservative")
    return VideoSettings(preset, preset.model, engine, encoder, segment_seconds=0.25, **extra)


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    from remaster.demo.samples import EpisodeSpec, make_episode

    folder = tmp_path_factory.mktemp("plan")
    return make_episode(folder / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.25))


def test_the_plan_is_a_frozen_picklable_value_with_everything_resolved(episode, tmp_path):
    plan = plan_job(episode, tmp_path / "out.mkv", _settings(tmp_path), scale=2)
    assert pickle.loads(pickle.dumps(plan)) == plan
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'batch'"):
        plan.batch = 2  # type: ignore[misc]
    # Nothing left to decide at run time: the device and precision are what the tasks run.
    assert (plan.engine.device, plan.engine.precision) == ("cpu", "fp32")
    assert (plan.frame.width, plan.frame.height) == (128, 96)
    assert len(plan.segments) == 4 and plan.frames == 24
    assert plan.output_format == "matroska" and plan.workdir == tmp_path / ".out.mkv.remaster"
    # The same input and settings plan the same job.
    assert plan_job(episode, tmp_path / "out.mkv", _settings(tmp_path), scale=2) == plan


def test_the_manifest_records_the_plan(episode, tmp_path):
    output = tmp_path / "out.mkv"
    Remasterer(_settings(tmp_path, keep_workdir=True)).run(episode, output)
    manifest = json.loads((tmp_path / ".out.mkv.remaster" / MANIFEST_NAME).read_text())
    recorded = manifest["effective"]["plan"]
    assert recorded["source"] == str(episode) and recorded["output"] == str(output)
    assert [first for _, first, _ in recorded["segments"]] == [r["first_pts"] for r in manifest["segments"]]
    assert recorded["device"] == "cpu" and manifest["settings"]["precision"] == "fp32"


def _planes(pts: int, seed: int) -> Planes:
    y = np.full((48, 64), 16 + seed * 20, np.uint8)
    chroma = np.full((24, 32), 128, np.uint8)
    return Planes(pts, y, chroma.copy(), chroma.copy(), 8, (1, 1), False)


def test_held_drawings_are_marked_and_never_across_a_segment():
    segments = Segment(0, (0, 1, 2)), Segment(1, (3,))
    stage = HeldDrawings(ReuseMode.EXACT)
    messages = [SegmentStart(segments[0], 3), Decoded(_planes(0, 1)), Decoded(_planes(1, 1)), Decoded(_planes(2, 2))]
    messages += [SegmentEnd(segments[0], DecodeStats()), SegmentStart(segments[1], 1), Decoded(_planes(3, 2))]
    out = [m for message in messages for m in stage.feed(message)]
    marks = [(m.planes.pts, m.held) for m in out if isinstance(m, Marked)]
    # Frame 1 is frame 0 again; frame 3 is frame 2 again, but in the next segment.
    assert marks == [(0, False), (1, True), (2, False), (3, False)]
    assert [type(m) for m in out if not isinstance(m, Marked)] == [SegmentStart, SegmentEnd, SegmentStart]


def test_the_upscale_stage_batches_computed_frames_and_gives_held_ones_the_last_result():
    upscaler = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))
    frame = OutputFrame(128, 96, ColourSpec("bt601", False, 8, (1, 1)), "bt601", Fraction(1), False)
    stage = UpscaleStage(upscaler, frame, batch=2)
    segment = Segment(0, (0, 1, 2, 3))
    fed = [Marked(_planes(0, 1), False), Marked(_planes(1, 1), True), Marked(_planes(2, 3), False)]
    out = [m for message in fed for m in stage.feed(message)]
    # Two computed frames fill a batch of 2: the held frame between them rides along.
    assert len(out) == 1 and isinstance(out[0], Upscaled) and out[0].held == 1
    first = out[0].frames
    assert [f.pts for f in first] == [0, 1, 2]
    assert first[1].y is first[0].y and not np.array_equal(first[2].y, first[0].y)
    assert first[0].y.shape == (96, 128) and first[0].u.shape == (48, 64)
    # The segment's end flushes a part batch, then passes the end on.
    out = list(stage.feed(Marked(_planes(3, 3), True))) + list(stage.feed(SegmentEnd(segment, DecodeStats())))
    assert [type(m) for m in out] == [Upscaled, SegmentEnd]
    assert out[0].held == 1 and out[0].frames[0].y is first[2].y
    assert (stage.computed, stage.held) == (2, 2)


def _encode_stage(tmp_path: Path) -> tuple[EncodeStage, dict[int, Path], WorkDir]:
    work = WorkDir(tmp_path / "work", "fingerprint", {"made": "here"}, owned=True).open()
    done: dict[int, Path] = {}
    video = VideoFormat(128, 96, Fraction(1), Fraction(1, 24), Fraction(24))
    stage = EncodeStage(
        work, done, EncoderSettings(codec="x264").resolved(), video, OutputColour("bt601", 6, 6, 6),
        QuietProgress(), tmp_path / "source.mkv",
    )  # fmt: skip
    return stage, done, work


def _output_planes(pts: int) -> OutputPlanes:
    rgb = anime_frame(96, 128, seed=pts)
    y = rgb.mean(axis=2).astype(np.uint8)
    return OutputPlanes(y, np.full((48, 64), 128, np.uint8), np.full((48, 64), 128, np.uint8), pts)


def test_the_encode_stage_commits_a_checkpoint_per_segment(tmp_path):
    stage, done, work = _encode_stage(tmp_path)
    segment = Segment(0, (0, 1, 2))
    frames = tuple(_output_planes(pts) for pts in segment.pts)
    for message in (SegmentStart(segment, 3), Upscaled(frames[:2], 0), Upscaled(frames[2:], 1)):
        stage.feed(message)
    assert done == {}  # nothing is a checkpoint before the segment's end
    stage.feed(SegmentEnd(segment, DecodeStats(frames=3)))
    stage.close()
    with av.open(str(done[0])) as container:
        # Matroska counts in milliseconds: frames 0, 1 and 2 at 24 fps.
        assert [round(frame.time * 24) for frame in container.decode(video=0)] == [0, 1, 2]
    assert work.records[segment.key].frames == 3
    work.close()


def test_a_segment_with_no_frame_is_refused_and_leaves_no_file(tmp_path):
    stage, done, work = _encode_stage(tmp_path)
    segment = Segment(0, (0, 1))
    stage.feed(SegmentStart(segment, 2))
    with pytest.raises(DamagedInput, match=r"source\.mkv: no frame of segment 0 could be decoded"):
        stage.feed(SegmentEnd(segment, DecodeStats()))
    stage.close()
    assert done == {} and not work.partial_path(segment).exists()
    work.close()


def test_a_failing_source_stops_every_stage_and_the_sink_cleans_up(tmp_path):
    stage, done, work = _encode_stage(tmp_path)
    segment = Segment(0, (0, 1, 2))

    def source():
        yield SegmentStart(segment, 3)
        yield Upscaled((_output_planes(0),), 0)
        raise OSError(5, "Input/output error", "source.mkv")

    with pytest.raises(OSError, match="Input/output error"):
        run_stages(source(), [HeldDrawings(ReuseMode.OFF)], stage, batch=1)
    assert done == {} and not work.partial_path(segment).exists()
    work.close()


def test_the_plan_gives_a_gpu_task_a_precision_the_model_runs_in():
    # spandrel marks some community networks unfit for fp16 (DnCNN, DAT): auto falls back in order.
    fp16_unfit = (Precision.FP32, Precision.BF16)
    assert resolve_engine(EngineSettings("cpu"), "community", "cuda", fp16_unfit).precision == Precision.BF16
    assert resolve_engine(EngineSettings("cpu"), "community", "cuda", (Precision.FP32,)).precision == Precision.FP32
    assert resolve_engine(EngineSettings("cpu"), "2x-conservative", "cuda").precision == Precision.FP16


def test_the_engine_is_decided_once_in_the_plan_and_keys_the_checkpoints(episode, tmp_path, monkeypatch):
    pytest.importorskip("ncnn", reason="the ncnn wheel is not installed")
    output = tmp_path / "out.mkv"

    def prepared(engine: str):
        monkeypatch.setenv("REMASTER_ENGINE", engine)  # what `--engine auto` takes on this CPU
        remasterer = Remasterer(_settings(tmp_path))
        return remasterer, remasterer.prepare(episode, output)

    remasterer, job = prepared("ncnn")
    assert job.plan.engine.engine == "ncnn" and job.plan.describe()["engine"] == "ncnn"
    remasterer.compute(job, job.todo[:2])
    remasterer.abandon(job)  # as after a kill: the two finished segments are kept
    # The same engine resumes where it stopped...
    remasterer, job = prepared("ncnn")
    assert len(job.todo) == len(job.plan.segments) - 2
    remasterer.abandon(job)
    # ...while another engine's pixels differ (by about 90 dB): nothing of the ncnn run is reused.
    remasterer, job = prepared("torch")
    assert job.plan.engine.engine == "torch" and len(job.todo) == len(job.plan.segments)
    remasterer.abandon(job)

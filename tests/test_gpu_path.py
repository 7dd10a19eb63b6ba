"""The CUDA path's decisions, each tested on the CPU where it is made: free memory with PyTorch's
cache, one tile plan per shape, IEEE float32 and cuDNN's benchmark switch, blocking events, the
last batch padded, the held-drawing check off the model's thread, the out-of-memory retry, and
the half-precision memory estimate against a counted peak."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from remaster.engines import buffers, device
from remaster.engines.accounting import PeakBytes, TransferCount
from remaster.engines.device import cuda_free_bytes, fit_tile, model_numerics, states_fit_on_device, value_bytes
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TilePlan, TorchUpscaler, state_device
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model
from remaster.video import stages
from remaster.video.reuse import ReuseMode
from remaster.video.stages import Upscaled, UpscaleStage, padded_batch
from tests.test_upscale_overlap import FRAME, MESSAGES

GIB = 1 << 30


@pytest.fixture(scope="module")
def upscaler() -> TorchUpscaler:
    return TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "auto"))


def test_free_memory_counts_what_pytorchs_cache_holds_unused():
    # After a 4x 1080p batch on a 24 GiB card: the driver says 12 GiB free, PyTorch holds 11 GiB with
    # 0.5 GiB of it in tensors (the model): 22.5 GiB can be had.
    assert cuda_free_bytes(12 * GIB, 11 * GIB, GIB // 2) == 22 * GIB + GIB // 2
    assert cuda_free_bytes(12 * GIB, 0, 0) == 12 * GIB
    per_pixel = load_model("4x-conservative").descriptor.activations_per_pixel
    # The tiles that a cache-blind reading would switch to from batch 2 on, and the whole frame it ran first.
    assert fit_tile(12 * GIB, per_pixel, 1080, 1920, 1, 2) > 0
    assert fit_tile(cuda_free_bytes(12 * GIB, 11 * GIB, GIB // 2), per_pixel, 1080, 1920, 1, 2) == 0


def test_the_tile_is_planned_once_per_shape_and_batch(upscaler, monkeypatch):
    readings = []
    monkeypatch.setattr("remaster.engines.torch_engine.upscaler.free_memory", lambda d: readings.append(d) or 8 * GIB)
    upscaler.plans.clear()
    for _ in range(3):
        upscaler.upscale(anime_frame(48, 64, seed=1)[None])
    upscaler.upscale(anime_frame(40, 64, seed=2)[None])
    assert len(readings) == 2 and set(upscaler.plans) == {(48, 64, 1), (40, 64, 1)}


def test_several_tiles_keep_their_states_on_a_gpu_where_they_fit():
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")  # device names only: nothing runs on them
    assert states_fit_on_device(80 * GIB, 1080, 1920, 1) and not states_fit_on_device(4 * GIB, 1080, 1920, 1)
    assert state_device(gpu, 4, states_fit=True) == gpu and state_device(gpu, 4, states_fit=False) == cpu


def test_fp32_is_ieee_and_a_callers_cudnn_benchmark_is_kept(upscaler, monkeypatch):
    seen = []
    stage = upscaler.stages[0]

    def watched(*args):
        conv = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
        seen.append((conv, torch.backends.cudnn.benchmark))
        return stage(*args)

    monkeypatch.setattr(upscaler, "stages", [watched, *upscaler.stages[1:]])
    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    upscaler.upscale(anime_frame(48, 64, seed=1)[None])
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # the caller's choice
    upscaler.upscale(anime_frame(48, 64, seed=1)[None])
    assert seen == [(("ieee", "ieee"), False), (("ieee", "ieee"), True)]
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    with model_numerics(benchmark=True):
        assert torch.backends.cudnn.benchmark


def test_events_a_thread_waits_on_are_blocking(monkeypatch):
    made = []
    monkeypatch.setattr(torch.cuda, "Event", lambda **flags: made.append(flags) or flags)
    buffers.completion_event()
    assert made == [{"blocking": True, "enable_timing": False}]


def test_a_short_last_batch_is_padded_to_the_full_batch(upscaler, monkeypatch):
    assert padded_batch([1, 2], 4) == [1, 2, 2, 2] and padded_batch([1, 2, 3], 3) == [1, 2, 3]
    shapes = []
    run = upscaler.upscale_rgb
    monkeypatch.setattr(upscaler, "upscale_rgb", lambda rgb: shapes.append(rgb.shape[0]) or run(rgb))
    padded, plain = UpscaleStage(upscaler, FRAME, batch=3, pad=True), UpscaleStage(upscaler, FRAME, batch=3)
    assert plain.pad is False  # a CPU runs a batch frame by frame: padding there would only cost
    replies = [[list(stage.feed(m)) for m in MESSAGES] for stage in (padded, plain)]
    assert shapes[: len(shapes) // 2] == [3, 3, 3]  # segment 0: 3 + 1 padded to 3; segment 1: 1 padded to 3

    def frames(reply):
        upscaled = [m for r in reply for m in r if isinstance(m, Upscaled)]
        return [(f.pts, f.y.tobytes(), f.u.tobytes()) for m in upscaled for f in m.frames]

    assert frames(replies[0]) == frames(replies[1]) and padded.computed == plain.computed == 5


def test_the_held_drawing_check_runs_in_the_decoding_thread_not_the_models(monkeypatch, tmp_path):
    from remaster.core.presets import get_preset
    from remaster.demo.samples import EpisodeSpec, make_episode
    from remaster.video.encode import EncoderSettings
    from remaster.video.pipeline import Remasterer
    from remaster.video.plan import VideoSettings

    threads = []
    same = stages.same_drawing
    monkeypatch.setattr(stages, "same_drawing", lambda *a: threads.append(threading.current_thread()) or same(*a))
    episode = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.0))
    preset = get_preset("2x-conservative")
    encoder = EncoderSettings(codec="x264").resolved()
    settings = VideoSettings(preset, preset.model, EngineSettings("cpu", "fp32", "0"), encoder, reuse=ReuseMode.AUTO)
    Remasterer(settings).run(episode, tmp_path / "out.mkv")
    # The model runs in the calling thread (stages.run_stages): the check never does.
    assert threads and threading.main_thread() not in threads


def test_out_of_memory_retries_in_half_the_tile_in_one_line(capsys, monkeypatch):
    up = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))
    stage = up.stages[0]

    def tight(state, *rest):  # a device that holds the first stage of a 100x100 window at most
        if state["x"].shape[-1] * state["x"].shape[-2] > 100 * 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return stage(state, *rest)

    frame = anime_frame(96, 128, seed=4)[None]
    whole = up.upscale(frame)
    monkeypatch.setattr(up, "stages", [tight, *up.stages[1:]])
    up.plans.clear()
    retried = up.upscale(frame)  # exact tiles: the same picture, up to the sums' rounding order
    assert np.abs(retried.astype(np.int16) - whole).max() <= 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["remaster: out of cpu memory at tile whole frame (CUDA out of memory. Tried to allocate "
                     "2.00 GiB); retrying with tile 64"]  # fmt: skip
    assert up.plans[(96, 128, 1)] == TilePlan(64, False) and up.tiles_run > 1
    up.upscale(frame)
    assert capsys.readouterr().err == ""  # the batches after keep the smaller plan


def test_the_transfer_counter_sees_each_copy_between_devices():
    with TransferCount() as count:
        torch.zeros(3).to("meta")  # meta: a second device that needs no GPU
        torch.empty(3, device="meta").copy_(torch.ones(3))
        torch.ones(3).add(1)
    assert (count.to_device, count.to_host) == (2, 0)


@pytest.mark.slow
def test_the_half_precision_estimate_covers_a_counted_4x_peak():
    # 4x keeps most of its activations in float32 even in fp16: counted 4460 B an input pixel at
    # 288x512 (1080p counted 4307), where 1800 values x 2 B planned 3600.
    up = TorchUpscaler(load_model("4x-conservative"), EngineSettings("cpu", "fp16", "0"))
    height, width = 288, 512
    rgb = torch.from_numpy(anime_frame(height, width, seed=1)).permute(2, 0, 1)[None].float() / 255
    with PeakBytes() as peak:
        up.upscale_rgb(rgb)
    planned = up.descriptor.activations_per_pixel * value_bytes(2) * height * width
    assert up.descriptor.activations_per_pixel * 2 * height * width < peak.most <= planned
    assert device.HALF_VALUE_BYTES > 2

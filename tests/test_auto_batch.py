"""`--batch auto` and `--tile auto` on a GPU: as many whole frames as fit in free device memory, else
one frame in the largest tile that fits. Pure functions of the numbers, given here for GPUs that
this CPU machine does not have (the free bytes are what torch.cuda.mem_get_info would say)."""

from __future__ import annotations

import pytest
import torch

from remaster.commands.video import parse_batch
from remaster.core.errors import UsageError
from remaster.engines.device import AUTO_BATCH_MAX, MEMORY_SHARE, auto_batch, fit_batch, fit_tile, value_bytes
from remaster.models.loader import load_model

GIB = 1 << 30
FP16 = 2  # bytes a value


@pytest.fixture(scope="module")
def per_pixel() -> int:
    return load_model("2x-conservative").descriptor.activations_per_pixel


def test_a_large_gpu_takes_the_most_whole_frames(per_pixel):
    # An H200 with 139 GiB free: 1080p frames at fp16 fit many times over; the batch stops at the cap.
    batch = fit_batch(139 * GIB, per_pixel, 1080, 1920, FP16)
    assert batch == AUTO_BATCH_MAX
    assert fit_tile(139 * GIB, per_pixel, 1080, 1920, batch, FP16) == 0  # whole frames


@pytest.mark.parametrize("free_gib", [16, 24, 40, 80])
def test_the_batch_is_the_most_whole_frames_that_fit(per_pixel, free_gib):
    free = free_gib * GIB
    batch = fit_batch(free, per_pixel, 1080, 1920, FP16)
    assert 1 <= batch <= AUTO_BATCH_MAX
    assert fit_tile(free, per_pixel, 1080, 1920, batch, FP16) == 0  # the chosen batch runs whole frames
    if batch < AUTO_BATCH_MAX:  # and one frame more would not
        assert fit_tile(free, per_pixel, 1080, 1920, batch + 1, FP16) > 0


def test_a_small_gpu_runs_one_frame_in_the_largest_tile_that_fits(per_pixel):
    free = 4 * GIB  # a 1080p frame's activations at 2x fp16 are about 5.4 GiB
    assert fit_batch(free, per_pixel, 1080, 1920, FP16) == 1
    tile = fit_tile(free, per_pixel, 1080, 1920, 1, FP16)
    assert 64 <= tile < 1080 and tile % 4 == 0
    planned = per_pixel * value_bytes(FP16)  # fp16 runs keep part of their values in float32
    assert tile * tile * planned <= free * MEMORY_SHARE < (tile + 4) ** 2 * planned


def test_a_cpu_runs_batch_one(per_pixel):
    # The CPU runs a batch frame by frame anyway (engines/torch_engine/upscaler.py): more frames only hold memory.
    assert auto_batch(per_pixel, 48, 64, torch.float32, torch.device("cpu")) == 1


def test_batch_option_auto_or_a_count():
    assert parse_batch("auto") is None and parse_batch("3") == 3
    for bad in ("0", "-2", "many"):
        with pytest.raises(UsageError, match="want auto or a count from 1 up"):
            parse_batch(bad)

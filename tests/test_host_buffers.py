"""Host buffers between host and device: made once per shape and reused for every batch, never one
per batch (on CUDA they are pinned, and pinning is slow). The same pool runs on the CPU unpinned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster.engines.buffers import HostBuffers

DEVICES = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def _frames(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("device", DEVICES)
def test_one_buffer_per_shape_however_many_batches(device):
    pool = HostBuffers(torch.device(device))
    shapes = [(2, 48, 64, 3), (2, 30, 40, 3)]  # two frame sizes, as a video and its last short batch
    for batch in range(5):
        for shape in shapes:
            frames = _frames(shape, batch)
            on_device = pool.to_device(pool.holding(frames))
            assert torch.equal(on_device.cpu(), frames)  # each batch's own bytes, not an earlier batch's
    assert pool.allocations == len(shapes)
    assert pool.pin == device.startswith("cuda")  # pinned only for a CUDA device


CUDA = DEVICES[1:] or [pytest.param("cuda", marks=pytest.mark.skip(reason="no CUDA GPU here: runs on one"))]
# GPU cycles the side stream sleeps before its copy (about 50 ms on a 2 GHz GPU): long enough that a
# refill which does not wait for the copy would overwrite the buffer before the copy reads it.
HOLD_CYCLES = 100_000_000


@pytest.mark.parametrize("device", CUDA)
def test_a_buffer_is_not_refilled_before_its_copy_to_the_gpu_has_read_it(device):
    pool = HostBuffers(torch.device(device))
    shape = (2, 64, 64, 3)
    first, second = _frames(shape, 1), _frames(shape, 2)
    held = pool.holding(first)
    with torch.cuda.stream(pool._stream):
        torch.cuda._sleep(HOLD_CYCLES)  # the copy queued next waits behind this on the side stream
    on_device = pool.to_device(held)
    pool.holding(second)  # the same buffer, refilled at once: it must wait for the copy
    assert torch.equal(on_device.cpu(), first)


@pytest.mark.parametrize("device", CUDA)
def test_a_download_is_not_read_before_its_copy_has_written_it(device):
    pool = HostBuffers(torch.device(device))
    planes = (torch.full((2, 64, 64), 7, dtype=torch.int16, device=device),)
    with torch.cuda.stream(pool._download):
        torch.cuda._sleep(HOLD_CYCLES)
    (host,), copied = pool.to_host(planes)
    copied.synchronize()  # a blocking event (buffers.EVENT_FLAGS): the thread sleeps, the bytes arrive
    assert (host == 7).all()


def test_planes_are_stacked_into_the_reused_buffer_at_the_wider_type():
    pool = HostBuffers()
    for seed in range(3):
        planes = [np.random.default_rng(seed + i).integers(0, 1024, (6, 8), dtype=np.uint16) for i in range(4)]
        stacked = pool.stacked(planes, torch.int32)
        assert stacked.dtype == torch.int32 and np.array_equal(stacked.numpy(), np.stack(planes))
    assert pool.allocations == 1

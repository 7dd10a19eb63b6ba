"""Host buffers reused from batch to batch: one per shape, strides and dtype.

A GPU copies from and to page-locked ("pinned") host memory directly and asynchronously; from
ordinary memory it goes through a staging copy and blocks. `Tensor.pin_memory()` makes a new
pinned buffer every time it is called, and pinning is slow (the pages are locked one by one), so a
batch loop that pins each batch spends more time pinning than copying. `HostBuffers` keeps one
buffer per layout and hands the same one back for every batch of that layout.

The same code runs on a CPU with `pin=False` (nothing to lock, no stream), so that the pool's
bookkeeping is what the CPU tests exercise; only the pinning and the side stream are CUDA's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

Layout = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]
# How every CUDA event that a thread waits on is made. Blocking: its `synchronize()` sleeps until the
# GPU signals it instead of polling, so that the model's thread does not burn a core that the
# decoder and the encoder need while it waits for a copy. No timing: that only costs.
EVENT_FLAGS = {"blocking": True, "enable_timing": False}


def completion_event() -> torch.cuda.Event:
    """A CUDA event to wait on (EVENT_FLAGS)."""
    return torch.cuda.Event(**EVENT_FLAGS)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


class HostBuffers:
    """A host buffer for each tensor layout, made the first time that layout is asked for.

    For a CUDA `device`: page-locked buffers, and copies to the device on a side stream of their
    own. A buffer handed out is the caller's until the next request for the same layout; the pool
    makes sure its last copy to the GPU has finished before it hands the buffer out again.
    """

    def __init__(self, device: torch.device | None = None):
        self.device = device if device is not None else torch.device("cpu")
        self.pin = self.device.type == "cuda"
        self.allocations = 0  # buffers made: one per layout, however many batches go through
        self._buffers: dict[Layout, Tensor] = {}
        self._copied: dict[Layout, torch.cuda.Event] = {}  # the last copy out of each buffer (CUDA)
        self._stream = torch.cuda.Stream(self.device) if self.pin else None
        # Results go back to the host on a stream of their own, beside the next batch's compute.
        self._download = torch.cuda.Stream(self.device) if self.pin else None

    def buffer(self, shape: tuple[int, ...], dtype: torch.dtype, stride: tuple[int, ...] | None = None) -> Tensor:
        layout = (tuple(shape), stride or contiguous_strides(tuple(shape)), dtype)
        found = self._buffers.get(layout)
        if found is None:
            found = torch.empty_strided(layout[0], layout[1], dtype=dtype, pin_memory=self.pin)
            self._buffers[layout] = found
            self.allocations += 1
        elif (event := self._copied.pop(layout, None)) is not None:
            event.synchronize()  # the GPU may still be reading the previous batch out of it
        return found

    def holding(self, tensor: Tensor) -> Tensor:
        """A host buffer holding a copy of `tensor` (from any device), in its layout if it is dense,
        else in contiguous order. A blocking copy: the bytes are there when this returns."""
        stride = tuple(tensor.stride()) if is_dense(tensor) else None
        held = self.buffer(tuple(tensor.shape), tensor.dtype, stride)
        held.copy_(tensor)
        return held

    def stacked(self, arrays: list[np.ndarray], dtype: torch.dtype) -> Tensor:
        """`np.stack(arrays)` written into a buffer of `dtype`, without a stacked copy first. uint16
        codes go into an int16 buffer bit for bit (torch has few uint16 kernels; int16 is the same
        two bytes, and colour.planes_to_rgb reads it back as unsigned)."""
        held = self.buffer((len(arrays), *arrays[0].shape), dtype)
        out = held.numpy()
        if dtype == torch.int16 and arrays[0].dtype == np.uint16:
            out = out.view(np.uint16)
        np.stack(arrays, out=out, casting="safe")
        return held

    def to_host(self, tensors: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], torch.cuda.Event | None]:
        """Device tensors copied to the host, and on CUDA the event after which their bytes are there.

        On CUDA the copies wait for the work queued so far on the current stream, then run on a
        stream of their own, into fresh pinned memory (PyTorch's caching host allocator reuses it
        once every view of it is gone, which a pool could not know: the encoder holds the planes);
        the current stream goes on with the next batch meanwhile. Elsewhere: the tensors on the host."""
        if self._download is None:
            return tuple(tensor.to("cpu") for tensor in tensors), None
        current = torch.cuda.current_stream(self.device)
        self._download.wait_stream(current)
        with torch.cuda.stream(self._download):
            hosts = []
            for tensor in tensors:
                tensor.record_stream(self._download)  # not reused by the compute stream before it is read
                host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                hosts.append(host.copy_(tensor, non_blocking=True))
            copied = completion_event()
            copied.record(self._download)
        return tuple(hosts), copied

    def to_device(self, host: Tensor) -> Tensor:
        """A buffer of this pool (`host`) on the pool's device. On CUDA the copy runs on the side stream,
        asynchronously, and the current stream waits for it before it uses the result; the buffer is
        not handed out again before the copy has read it. On the CPU: the buffer itself."""
        if self._stream is None:
            return host.to(self.device)
        # The copy reads host memory only, so it need not wait for the model's queued work: it can
        # run while the GPU computes the batch before.
        current = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._stream):
            moved = host.to(self.device, non_blocking=True)
            event = completion_event()
            event.record(self._stream)
        current.wait_stream(self._stream)
        moved.record_stream(current)  # its memory belongs to the current stream's work now
        self._copied[(tuple(host.shape), tuple(host.stride()), host.dtype)] = event
        return moved


def is_dense(tensor: Tensor) -> bool:
    """Its elements fill one block of memory with no gaps (in any dimension order), so the
    block's bytes are the tensor and a tensor with the same strides rebuilds it."""
    expected = 1
    for size, stride in sorted(zip(tensor.shape, tensor.stride(), strict=True), key=lambda pair: pair[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True

"""Counting what a run moves and holds, by watching torch's operations: copies between devices
(host <-> GPU traffic) and the peak bytes of the tensors the operations make.

Both count the same way on any device, so that the CPU tests and the GPU benchmark read one
counter: a copy is any operation whose result is on another device than its input; a tensor's
bytes count from the operation that makes it until the last tensor viewing its memory is gone.
Workspaces that kernels take for themselves (cuDNN's algorithm trials among them) are no
tensor and do not count: this is the memory a plan must leave for the model's activations.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Operations that give a tensor on another device than their input's.
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


def _tensors(value: Any) -> list[torch.Tensor]:
    return [leaf for leaf in tree_flatten(value)[0] if isinstance(leaf, torch.Tensor)]


class TransferCount(TorchDispatchMode):
    """`with TransferCount() as count:`: `count.copies` is the copies between devices made inside,
    `count.to_device` and `count.to_host` the same split by direction."""

    def __init__(self) -> None:
        super().__init__()
        self.to_device = 0
        self.to_host = 0

    @property
    def copies(self) -> int:
        return self.to_device + self.to_host

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        out = func(*args, **(kwargs or {}))
        if func in _COPIES:
            sources = _tensors(args[1] if func is torch.ops.aten.copy_.default else args[0])
            results = _tensors(out)
            if sources and results and sources[0].device != results[0].device:
                if results[0].device.type == "cpu":
                    self.to_host += 1
                else:
                    self.to_device += 1
        return out


class PeakBytes(TorchDispatchMode):
    """`with PeakBytes() as peak:`: `peak.most` is the most bytes that tensors made inside held at
    once (a memory shared by views counts once); tensors made before the block do not count."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.most = 0
        self._holders: dict[tuple[torch.device, int], int] = {}  # memory -> tensors viewing it

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        out = func(*args, **(kwargs or {}))
        # A result in its input's memory (a view, an in-place operation) is new memory only if that
        # memory is counted already; the memory of tensors made before the block is not.
        older = {(t.device, t.untyped_storage().data_ptr()) for t in _tensors((args, kwargs))}
        for tensor in _tensors(out):
            self._hold(tensor, older)
        return out

    def _hold(self, tensor: torch.Tensor, older: set[tuple[torch.device, int]]) -> None:
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        if storage.nbytes() == 0 or (key in older and key not in self._holders):
            return
        if key not in self._holders:
            self._holders[key] = 0
            self.live += storage.nbytes()
            self.most = max(self.most, self.live)
        self._holders[key] += 1
        weakref.finalize(tensor, self._release, key, storage.nbytes())

    def _release(self, key: tuple[torch.device, int], nbytes: int) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            del self._holders[key]
            self.live -= nbytes

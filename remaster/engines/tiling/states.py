"""Where tile states wait between SE stages: in memory up to a budget, the rest in a temporary file.

Exact tiles keep every tile's state between the stages (`remaster.engines.tiling.tiles`): about 200
values a source pixel, so they grow with the frame, not the tile (2x, fp32: 3.4 GiB for a
2048x2048 picture). Past the budget, `TileStates` writes a tile's tensors to an unlinked file in
the temporary folder and reads them back, byte for byte, when the next stage takes the tile:
the numbers are the same as in memory, only the bytes move. The file has no name from the
moment it is made, so a killed run leaves nothing behind.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import torch
from torch import Tensor

from remaster.architectures.realcugan.network import State
from remaster.engines.buffers import is_dense


@dataclass(frozen=True)
class _Spilled:
    """One tensor of a spilled state: where its bytes are in the file and how to rebuild it."""

    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * self.dtype.itemsize


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _bytes_of(tensor: Tensor) -> memoryview:
    """The memory of a dense CPU tensor as bytes, in the order it lies in (no copy)."""
    flat = tensor.as_strided((tensor.numel(),), (1,))
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


class _FreeSpace:
    """Free ranges of the spill file: first fit, neighbours merged, so that the file stays about
    the size of the states it holds at once (each stage's state replaces the last one's)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []  # (offset, length), sorted by offset
        self.end = 0  # the file's used length
        self.high_water = 0

    def take(self, length: int) -> int:
        for i, (offset, free) in enumerate(self.ranges):
            if free >= length:
                self.ranges[i : i + 1] = [(offset + length, free - length)] if free > length else []
                return offset
        offset = self.end
        if self.ranges and sum(self.ranges[-1]) == self.end:  # a free tail grows instead
            offset = self.ranges.pop()[0]
        self.end = offset + length
        self.high_water = max(self.high_water, self.end)
        return offset

    def give(self, offset: int, length: int) -> None:
        i = bisect.bisect(self.ranges, (offset, length))
        if i < len(self.ranges) and offset + length == self.ranges[i][0]:
            length += self.ranges.pop(i)[1]
        if i > 0 and sum(self.ranges[i - 1]) == offset:
            offset, length = self.ranges[i - 1][0], self.ranges[i - 1][1] + length
            self.ranges.pop(i - 1)
            i -= 1
        if offset + length == self.end:
            self.end = offset
        else:
            self.ranges.insert(i, (offset, length))


class TileStates:
    """Tile states between stages: `put` a tile's state, `take` it back (and forget it).

    States are kept on `device` (host memory for a GPU run, so that GPU memory is bounded by
    the tile) while they total at most `memory_budget` bytes; beyond that they go to an unlinked
    file in `folder` (default: the system's temporary folder, which follows $TMPDIR). A budget of
    0 spills every state; the default never spills. Spilled tensors are written from, and read
    into, tensors of their own, freed as soon as they are taken: a pool of reused buffers
    (engines/buffers.py) would keep one per state layout alive for the engine's life, and on a
    384x384 frame that ate two thirds of the memory spilling saves (tests/test_spill.py).
    """

    def __init__(
        self,
        device: torch.device,
        memory_budget: float = float("inf"),
        folder: str | None = None,
    ):
        self.device = device
        self.memory_budget = memory_budget
        self.folder = folder
        self.in_memory: dict[int, State] = {}
        self.memory_bytes = 0
        self.disk_bytes = 0
        self.peak_bytes = 0  # the most bytes of states kept at once, in memory and on disk
        self.written_bytes = 0  # bytes of states written to the spill file, all stages together
        self.spilled: dict[int, dict[str, _Spilled]] = {}
        self.moves = 0  # tensors copied between devices by put and take (GPU <-> host: PCIe traffic)
        self.space = _FreeSpace()
        self._file: BinaryIO | None = None

    @property
    def file_bytes_peak(self) -> int:
        """The spill file's largest size: the states it held at once, plus any gaps between them."""
        return self.space.high_water

    def put(self, index: int, state: State) -> None:
        size = sum(tensor.nbytes for tensor in state.values())
        if self.memory_bytes + size <= self.memory_budget:
            self.moves += sum(tensor.device != self.device for tensor in state.values())
            self.in_memory[index] = {k: v.to(self.device, non_blocking=True) for k, v in state.items()}
            self.memory_bytes += size
        else:
            self.spilled[index] = {name: self._write(tensor) for name, tensor in state.items()}
            self.disk_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.memory_bytes + self.disk_bytes)

    def take(self, index: int, device: torch.device) -> State:
        if index in self.in_memory:
            state = self.in_memory.pop(index)
            self.memory_bytes -= sum(tensor.nbytes for tensor in state.values())
            self.moves += sum(tensor.device != device for tensor in state.values())
            return {k: v.to(device, non_blocking=True) for k, v in state.items()}
        spilled = self.spilled.pop(index)
        self.disk_bytes -= sum(where.nbytes for where in spilled.values())
        return {name: self._read(where).to(device) for name, where in spilled.items()}

    def _write(self, tensor: Tensor) -> _Spilled:
        # Blocking: a GPU tensor's bytes must be on the host before they are written.
        host = tensor.to("cpu")
        if not is_dense(host):
            host = host.clone()  # as `.to` would lay it out when kept in memory
        where = _Spilled(self.space.take(host.nbytes), tuple(host.shape), tuple(host.stride()), host.dtype)
        data = _bytes_of(host)
        try:
            fd = self._fileno()
            done = 0
            while done < len(data):  # os.pwrite may write less than asked (and does near a full disk)
                done += os.pwrite(fd, data[done:], where.offset + done)
        except OSError as exc:
            raise self._explained(exc) from exc
        self.written_bytes += done
        return where

    def _read(self, where: _Spilled) -> Tensor:
        tensor = torch.empty_strided(where.shape, where.stride, dtype=where.dtype)
        buffer = _bytes_of(tensor)
        done = 0
        while done < len(buffer):
            count = os.preadv(self._fileno(), [buffer[done:]], where.offset + done)
            if count == 0:
                raise OSError(f"spill file ended early at byte {where.offset + done}")
            done += count
        self.space.give(where.offset, where.nbytes)
        return tensor

    def _fileno(self) -> int:
        if self._file is None:
            # TemporaryFile unlinks the file at once: it exists only while this store is open.
            self._file = tempfile.TemporaryFile(dir=self.folder)
        return self._file.fileno()

    def _explained(self, exc: OSError) -> OSError:
        """The same error, naming the folder the states went to and how to choose another."""
        folder = self.folder or tempfile.gettempdir()
        where = f"{folder} (tile states of a frame too large for memory; $TMPDIR chooses the folder)"
        return OSError(exc.errno, exc.strerror, where)

    def close(self) -> None:
        self.in_memory.clear()
        self.spilled.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TileStates:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

"""The torch engine: each architecture's own PyTorch network, eager or through torch.compile, on
the CPU, CUDA (or ROCm), MPS or XPU, in exact tiles (SE stages with whole-frame means, receptive
fields) or, for a community model, cross-faded tiles."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from remaster.architectures.descriptor import Blended, LoadedModel, ReceptiveField, SeStages
from remaster.engines.base import Upscaler
from remaster.engines.device import (
    MIN_TILE,
    fit_tile,
    free_memory,
    model_numerics,
    resolve_device,
    resolve_precision,
    states_fit_on_device,
)
from remaster.engines.settings import TILE_MULTIPLE, EngineSettings
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles, run_body_tiled
from remaster.engines.torch_engine.compiled import Compiled, CompileState, say


def state_device(engine: torch.device, tiles: int, states_fit: bool = False) -> torch.device:
    """Where tile states wait between SE stages. One tile: the frame fits on the device as it is,
    and its states stay there: sending them to the host and back would cost the frame's feature
    maps over PCIe four times a frame (gigabytes at 1080p) for nothing. Several tiles: on the
    device too where the whole frame's states fit in their share of its memory (`states_fit`:
    device.states_fit_on_device); else in host memory (and past a budget a file), so that GPU
    memory is bounded by the tile, not the frame."""
    return engine if tiles == 1 or states_fit else torch.device("cpu")


@dataclass(frozen=True)
class TilePlan:
    """How a batch of one shape runs, planned once from one reading of free memory: the tile side
    (0: whole frame), and whether several tiles' states fit on the device."""

    tile: int
    states_fit: bool


class TorchUpscaler(Upscaler):
    """An `Upscaler` whose network is the architecture's PyTorch module, on the frames' device."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings | None = None):
        settings = settings or EngineSettings()
        device = resolve_device(settings.device)
        descriptor = loaded.descriptor
        dtype = resolve_precision(settings.precision, device, descriptor.auto_cpu_bf16, descriptor.precisions)
        super().__init__(loaded, device, dtype, settings)
        self.model = loaded.module.set_precision(self.dtype).to(self.device, memory_format=torch.channels_last)
        self.cudnn_benchmark = settings.cudnn_benchmark
        # (height, width, batch) -> its plan: made once, so that the cache PyTorch keeps after the
        # first batch does not change the tiling (and the rounding) in the middle of a video.
        self.plans: dict[tuple[int, int, int], TilePlan] = {}
        # With --compile: compiled parts that fall back together to the plain ones where compiling fails.
        self.compile_state = CompileState() if settings.compile else None
        if isinstance(self.tiling, SeStages):
            self.stages = [self._compiled(stage, settings.compile_mode) for stage in self.model.stages]
        else:
            self.body = self._compiled(self.model, settings.compile_mode)

    def _compiled(self, function: Callable[..., Tensor], mode: str) -> Callable[..., Tensor]:
        return function if self.compile_state is None else Compiled(function, mode, self.compile_state)

    def plan_for(self, height: int, width: int, batch: int) -> TilePlan:
        key = (height, width, batch)
        if key not in self.plans:
            free = free_memory(self.device)
            tile = self.tile
            if tile is None:
                per_pixel = self.descriptor.activations_per_pixel
                tile = fit_tile(free, per_pixel, height, width, batch, self.dtype.itemsize)
            fits = self.device.type != "cpu" and states_fit_on_device(free, height, width, batch)
            self.plans[key] = TilePlan(tile, fits)
        return self.plans[key]

    def tile_for(self, height: int, width: int, batch: int) -> int:
        return self.plan_for(height, width, batch).tile

    def _forward(self, x: Tensor) -> Tensor:
        if self.compile_state is not None and not self.compile_state.cost_said:
            self.compile_state.cost_said = True
            start = time.perf_counter()
            out = self._on_device(x)
            if not self.compile_state.failed:
                seconds = time.perf_counter() - start
                say(f"the first frame, compiled, took {seconds:.1f} s (a new tile shape compiles again)")
            return out
        return self._on_device(x)

    def _on_device(self, x: Tensor) -> Tensor:
        with model_numerics(self.cudnn_benchmark):
            return self._run(x)

    def _run_batch(self, x: Tensor) -> Tensor:
        """The batch as planned, retried in half the tile while the device runs out of memory
        (as the ncnn engine's `_run_shrinking`); the smaller plan stays for the batches after."""
        key = (x.shape[-2], x.shape[-1], x.shape[0])
        while True:
            plan = self.plan_for(*key)
            try:
                return self._run_planned(x, plan)
            except torch.OutOfMemoryError as exc:
                smaller = (plan.tile or max(x.shape[-2:])) // 2 // TILE_MULTIPLE * TILE_MULTIPLE
                if smaller < MIN_TILE:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()  # the failed attempt's blocks, for the smaller one
                said = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
                print(f"remaster: out of {self.where} memory at tile {plan.tile or 'whole frame'} "
                      f"({said[:100]}); retrying with tile {smaller}", file=sys.stderr)  # fmt: skip
                self.plans[key] = TilePlan(smaller, False)

    def _run_planned(self, x: Tensor, plan: TilePlan) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_local(x, self.tiling, plan.tile)
        if isinstance(self.tiling, Blended):
            return self._run_blended(x, self.tiling, plan.tile)
        model = self.model
        # Left in float32: the first layer reads the picture in float32 (UpCunet.FLOAT32_LAYERS).
        padded = model.pad(x).contiguous(memory_format=torch.channels_last)
        g = model.geometry
        core_h, core_w = padded.shape[-2] - 2 * g.pad, padded.shape[-1] - 2 * g.pad
        tiles = plan_tiles(core_h, core_w, plan.tile, self.descriptor.tile_multiple)
        self.tiles_run = len(tiles)
        device = state_device(self.device, len(tiles), plan.states_fit)
        budget = self.state_memory if device.type == "cpu" else float("inf")  # on the device: planned to fit
        with TileStates(device, budget) as store:
            body = run_body_tiled(model, padded, tiles, self.stages, store)
        self._kept(store)
        return model.finish(body, x)

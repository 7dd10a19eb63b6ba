"""The torch engine: each architecture's own PyTorch network, eager or through torch.compile, on
the CPU, CUDA (or ROCm), MPS or XPU, in exact tiles (SE stages with whole-frame means, receptive
fields) or, for a community model, cross-faded tiles."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from remaster.architectures.community.detection import note_blended
from remaster.architectures.descriptor import Blended, LoadedModel, ReceptiveField, SeStages
from remaster.engines.base import EngineSettings, Upscaler
from remaster.engines.device import auto_tile, resolve_device, resolve_precision
from remaster.engines.tiling.blended import run_blended_tiled
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles, run_body_tiled
from remaster.engines.torch_engine.compiled import Compiled, CompileState, say


def state_device(engine: torch.device, tiles: int) -> torch.device:
    """Where tile states wait between SE stages. Several tiles: host memory (and past a budget a
    file), so that GPU memory is bounded by the tile, not the frame. One tile: the frame fits on
    the device as it is, and its states stay there: sending them to the host and back would cost
    the frame's feature maps over PCIe four times a frame (gigabytes at 1080p) for nothing."""
    return engine if tiles == 1 else torch.device("cpu")


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
        # With --compile: compiled parts that fall back together to the plain ones where compiling fails.
        self.compile_state = CompileState() if settings.compile else None
        if isinstance(self.tiling, SeStages):
            self.stages = [self._compiled(stage, settings.compile_mode) for stage in self.model.stages]
        else:
            self.body = self._compiled(self.model, settings.compile_mode)

    def _compiled(self, function: Callable[..., Tensor], mode: str) -> Callable[..., Tensor]:
        return function if self.compile_state is None else Compiled(function, mode, self.compile_state)

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, self.dtype, self.device)

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
        if self.device.type != "cuda":
            return self._run(x)
        # cuDNN's switch is process-wide: set for this call only, and put back.
        was = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            return self._run(x)
        finally:
            torch.backends.cudnn.benchmark = was

    def _run_batch(self, x: Tensor) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_local(x, self.tiling)
        if isinstance(self.tiling, Blended):
            return self._run_blended(x, self.tiling)
        model = self.model
        # Left in float32: the first layer reads the picture in float32 (UpCunet.FLOAT32_LAYERS).
        padded = model.pad(x).contiguous(memory_format=torch.channels_last)
        g = model.geometry
        core_h, core_w = padded.shape[-2] - 2 * g.pad, padded.shape[-1] - 2 * g.pad
        tile = self.tile_for(x.shape[-2], x.shape[-1], x.shape[0])
        tiles = plan_tiles(core_h, core_w, tile, self.descriptor.tile_multiple)
        self.tiles_run = len(tiles)
        device = state_device(self.device, len(tiles))
        budget = self.state_memory if device.type == "cpu" else float("inf")  # one tile: the frame fits
        with TileStates(device, budget) as store:
            body = run_body_tiled(model, padded, tiles, self.stages, store)
        self._kept(store)
        return model.finish(body, x)

    def _run_blended(self, x: Tensor, tiling: Blended) -> Tensor:
        h, w = x.shape[-2:]
        tiles = plan_tiles(h, w, self.tile_for(h, w, x.shape[0]), tiling.multiple)
        self.tiles_run = len(tiles)
        if len(tiles) > 1:
            note_blended(self.descriptor)
        return run_blended_tiled(self.body, x, tiles, tiling.margin, tiling.fade, self.descriptor.scale, tiling.align)

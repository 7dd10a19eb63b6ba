"""The engine: batches of 8- or 16-bit RGB(A) frames in, upscaled frames of the same depth out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from remaster.engine.archs.community import note_blended
from remaster.engine.blend_tiling import run_blended_tiled
from remaster.engine.buffers import HostBuffers
from remaster.engine.compiled import Compiled, CompileState, say
from remaster.engine.device import (
    auto_batch,
    auto_tile,
    precision_name,
    resolve_device,
    resolve_precision,
    state_memory_budget,
)
from remaster.engine.local_tiling import pad_frame, run_local_tiled
from remaster.engine.precision import Precision
from remaster.engine.states import TileStates
from remaster.engine.tiling import plan_tiles, run_body_tiled
from remaster.errors import UsageError
from remaster.models.descriptor import Blended, LoadedModel, ReceptiveField, SeStages

MAX_VALUE = {torch.uint8: 255, torch.uint16: 65535}
# `--tile` takes multiples of this: every architecture's tile multiple divides it (SE stages: 4).
TILE_MULTIPLE = 4


def state_device(engine: torch.device, tiles: int) -> torch.device:
    """Where tile states wait between SE stages. Several tiles: host memory (and past a budget a
    file), so that GPU memory is bounded by the tile, not the frame. One tile: the frame fits on
    the device as it is, and its states stay there: sending them to the host and back would cost
    the frame's feature maps over PCIe four times a frame (gigabytes at 1080p) for nothing."""
    return engine if tiles == 1 else torch.device("cpu")


def parse_tile(value: str | int) -> int | None:
    """`auto` -> None; else a side in pixels: 0 (whole frame) or a multiple of 4, at least 64."""
    if value == "auto":
        return None
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: want auto, 0 or a multiple of 4 from 64 up") from None
    if tile != 0 and (tile < 64 or tile % TILE_MULTIPLE):
        raise UsageError(f"--tile {value}: want auto, 0 or a multiple of 4 from 64 up")
    return tile


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    precision: Precision = Precision.AUTO
    tile: str | int = "auto"
    compile: bool = False
    # Bytes of host memory that tile states may hold between SE stages before the rest goes to
    # a temporary file; None: $REMASTER_STATE_MEMORY, else a share of free memory (device.py).
    state_memory: int | None = None
    # Speed switches that benchmarks/gpu.py measures on a GPU; off until a measurement keeps them.
    # torch.compile's mode: "default", or "reduce-overhead" (CUDA graphs for the fixed shapes).
    compile_mode: str = "default"
    cudnn_benchmark: bool = False  # CUDA: let cuDNN time its algorithms for each shape, and keep the fastest
    # auto, torch or ncnn (engine/engines.py); engine/choice.make_upscaler reads it.
    engine: str = "auto"


class Upscaler:
    """Runs one loaded model on batches of frames; results do not depend on the batch size."""

    # Where an engine has no such thing (the ncnn engine's subclass): no torch.compile, no cuDNN.
    compile_state: CompileState | None = None
    cudnn_benchmark: bool = False

    def __init__(self, loaded: LoadedModel, settings: EngineSettings = EngineSettings()):
        self.descriptor = loaded.descriptor
        self.device = resolve_device(settings.device)
        self.dtype = resolve_precision(
            settings.precision, self.device, self.descriptor.auto_cpu_bf16, self.descriptor.precisions
        )
        self.tile = parse_tile(settings.tile)
        self.model = loaded.module.set_precision(self.dtype).to(self.device, memory_format=torch.channels_last)
        self.tiling = self.descriptor.tiling
        self.cudnn_benchmark = settings.cudnn_benchmark
        # With --compile: compiled parts that fall back together to the plain ones where compiling fails.
        self.compile_state = CompileState() if settings.compile else None
        if isinstance(self.tiling, SeStages):
            self.stages = [self._compiled(stage, settings.compile_mode) for stage in self.model.stages]
        else:
            self.body = self._compiled(self.model, settings.compile_mode)
        # Tile states wait in host memory between SE stages, so that GPU memory is bounded
        # by the tile and not by the frame; past this budget, in a temporary file, so that
        # host memory is too. Measured once, before any frame: the memory a frame frees stays
        # with the process (glibc keeps it: process_settings.py), so free memory read later would shrink.
        self.state_memory = state_memory_budget(settings.state_memory)
        # The most bytes of tile states kept at once in any frame so far, in memory or on disk.
        self.kept_state_bytes = 0
        self.state_moves = 0  # tensors the last batch's states copied between devices (TileStates.moves)
        # Frames and spilled states pass between host and device through these, one per shape.
        self.host_buffers = HostBuffers(self.device)

    def _compiled(self, function: Callable[..., Tensor], mode: str) -> Callable[..., Tensor]:
        return function if self.compile_state is None else Compiled(function, mode, self.compile_state)

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    @property
    def where(self) -> str:
        """Where the network runs, for messages: "cpu", "cuda" (the ncnn engine: "vulkan:0", "cpu ncnn")."""
        return self.device.type

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, self.dtype, self.device)

    def batch_for(self, height: int, width: int) -> int:
        """`--batch auto` for HxW frames: as many whole frames as fit in the device's free memory (1 on a CPU)."""
        return auto_batch(self.descriptor.activations_per_pixel, height, width, self.dtype, self.device)

    @torch.inference_mode()
    def upscale(self, frames: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """N x H x W x C (C = 3 or 4) uint8 or uint16 -> N x sH x sW x C, same type and depth.

        An alpha channel is upscaled by the model too, as a grey picture, so that its edges
        stay as sharp as the colour's.
        """
        as_numpy = isinstance(frames, np.ndarray)
        x = torch.from_numpy(np.require(frames, requirements=["C", "W"])) if as_numpy else frames
        max_value = MAX_VALUE.get(x.dtype)
        if max_value is None or x.dim() != 4 or x.shape[-1] not in (3, 4):
            raise ValueError(f"want N x H x W x 3|4 uint8 or uint16 frames, got {tuple(x.shape)} {x.dtype}")
        n, h, w, c = x.shape
        if x.device == self.device:
            src = x
        elif x.device.type == "cpu":
            # Through a reused host buffer, pinned on CUDA: the copy runs asynchronously, with no
            # staging copy and no new pinned buffer each batch (engine/buffers.py).
            src = self.host_buffers.to_device(self.host_buffers.holding(x))
        else:
            src = x.to(self.device)
        rgb = src.permute(0, 3, 1, 2).float().div_(max_value)
        if c == 4:
            alpha = rgb[:, 3:4].expand(n, 3, h, w)
            rgb = torch.cat([rgb[:, :3], alpha])
        y = self.upscale_rgb(rgb)
        if c == 4:
            y = torch.cat([y[:n], y[n:].mean(dim=1, keepdim=True)], dim=1)
        # Round half up, as the ncnn runner and upcunet_v3.py's (x * 255).round() do for >= 0.
        out = y.mul_(max_value).add_(0.5).floor_().clamp_(0, max_value).permute(0, 2, 3, 1)
        # Straight to the output's type and layout, one copy (16-bit through int32: PyTorch's
        # float -> uint16 conversion is not there on every version).
        if max_value > 255:
            out = out.to(torch.int32, memory_format=torch.contiguous_format)
        out = out.to(x.dtype, memory_format=torch.contiguous_format).to(x.device)
        return out.numpy() if as_numpy else out

    @torch.inference_mode()
    def upscale_rgb(self, rgb: Tensor) -> Tensor:
        """N x 3 x H x W float R'G'B' in [0, 1] on the engine's device -> N x 3 x sH x sW, not yet rounded.

        The video pipeline uses this directly, so that frames are quantised once, to the
        output's bit depth, instead of to 8-bit RGB first.
        """
        _, _, h, w = rgb.shape
        if min(h, w) < self.descriptor.min_size:
            raise UsageError(f"{w}x{h} is too small for this model (at least {self.descriptor.min_size} px a side)")
        x = rgb.contiguous(memory_format=torch.channels_last)
        if self.compile_state is not None and not self.compile_state.cost_said:
            self.compile_state.cost_said = True
            start = time.perf_counter()
            out = self._run_on_device(x)
            if not self.compile_state.failed:
                seconds = time.perf_counter() - start
                say(f"the first frame, compiled, took {seconds:.1f} s (a new tile shape compiles again)")
            return out
        return self._run_on_device(x)

    def _run_on_device(self, x: Tensor) -> Tensor:
        if self.device.type != "cuda":
            return self._run(x)
        # cuDNN's switch is process-wide: set for this call only, and put back.
        was = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            return self._run(x)
        finally:
            torch.backends.cudnn.benchmark = was

    def _run(self, x: Tensor) -> Tensor:
        if self.device.type == "cpu" and x.shape[0] > 1:
            # oneDNN's CPU deconvolutions sum in an order that depends on the batch size
            # (up to 3e-5 apart); one frame at a time keeps results independent of it, and
            # costs nothing on a CPU, where one frame already fills every core.
            return torch.cat([self._run_batch(frame[None]) for frame in x])
        return self._run_batch(x)

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
        device = state_device(self.device, len(tiles))
        budget = self.state_memory if device.type == "cpu" else float("inf")  # one tile: the frame fits
        with TileStates(device, budget) as store:
            body = run_body_tiled(model, padded, tiles, self.stages, store)
        self.kept_state_bytes = max(self.kept_state_bytes, store.peak_bytes)
        self.state_moves = store.moves
        return model.finish(body, x)

    def _run_local(self, x: Tensor, tiling: ReceptiveField, tile: int | None = None) -> Tensor:
        """A purely local network in tiles widened by its receptive field; `tile`: as planned if None."""
        border = self.descriptor.border
        padded = pad_frame(x, border).contiguous(memory_format=torch.channels_last)
        h, w = x.shape[-2:]
        tile = self.tile_for(h, w, x.shape[0]) if tile is None else tile
        core_h, core_w = padded.shape[-2] - 2 * border.size, padded.shape[-1] - 2 * border.size
        tiles = plan_tiles(core_h, core_w, tile, tiling.multiple)
        s = self.descriptor.scale
        out = run_local_tiled(self.body, padded, tiles, border.size, tiling.margin, s, tiling.consumed)
        return out[..., : s * h, : s * w].float()

    def _run_blended(self, x: Tensor, tiling: Blended) -> Tensor:
        h, w = x.shape[-2:]
        tiles = plan_tiles(h, w, self.tile_for(h, w, x.shape[0]), tiling.multiple)
        if len(tiles) > 1:
            note_blended(self.descriptor)
        return run_blended_tiled(self.body, x, tiles, tiling.margin, tiling.fade, self.descriptor.scale, tiling.align)

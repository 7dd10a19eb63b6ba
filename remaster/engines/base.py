"""What every engine is: batches of 8- or 16-bit RGB(A) frames in, upscaled frames of the same
depth out, on one device and precision.

`Upscaler` holds what the runtimes share: the frames' conversion to and from float R'G'B'
(alpha, rounding, 16-bit), the model's smallest side, one frame at a time on a CPU, and the
receptive-field tiler around a runtime's `body`. A runtime (engines/torch_engine, engines/ncnn_engine)
says where its network runs and how a batch goes through it (`_run_batch`), and plans its tiles
(`tile_for`). Nothing builds one directly: `engines.choice.make_upscaler` picks it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from remaster.architectures.community.detection import note_blended
from remaster.architectures.descriptor import Blended, LoadedModel, ModelDescriptor, ReceptiveField
from remaster.core.errors import UsageError
from remaster.engines.buffers import HostBuffers
from remaster.engines.device import auto_batch, precision_name, state_memory_budget
from remaster.engines.host_frames import from_network, to_network
from remaster.engines.settings import EngineSettings, parse_tile
from remaster.engines.tiling.blended import run_blended_tiled
from remaster.engines.tiling.local import upscale_local
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles

if TYPE_CHECKING:
    from remaster.engines.openvino_engine.prepared import PreparedGraph

MAX_VALUE = {torch.uint8: 255, torch.uint16: 65535}


class Upscaler(ABC):
    """Runs one loaded model on batches of frames; results do not depend on the batch size.

    A runtime's constructor resolves its device and precision and then calls this one."""

    def __init__(
        self, loaded: LoadedModel, device: torch.device, dtype: torch.dtype, settings: EngineSettings
    ) -> None:
        self.descriptor: ModelDescriptor = loaded.descriptor
        self.device = device  # where frames are handed to the network (the host, for ncnn)
        self.dtype = dtype
        self.tile = parse_tile(settings.tile)
        self.tiling = self.descriptor.tiling
        # Tile states wait in host memory between SE stages, so that GPU memory is bounded
        # by the tile and not by the frame; past this budget, in a temporary file, so that
        # host memory is too. Measured once, before any frame: the memory a frame frees stays
        # with the process (glibc keeps it: core/process_settings.py), so free memory read later would shrink.
        self.state_memory = state_memory_budget(settings.state_memory)
        # The most bytes of tile states kept at once in any frame so far, in memory or on disk.
        self.kept_state_bytes = 0
        # The most bytes of tile states any frame so far wrote to the spill file (past the budget).
        self.spilled_state_bytes = 0
        self.state_moves = 0  # tensors the last batch's states copied between devices (TileStates.moves)
        self.states_device: torch.device | None = None  # where the last batch's tile states waited
        self.tiles_run = 0  # the tiles the last frame (or batch, off the CPU) ran in: 1 is the whole frame
        # Frames and spilled states pass between host and device through these, one per shape.
        self.host_buffers = HostBuffers(self.device)
        # A purely local network as one function of a padded window (the receptive-field tiler's body).
        self.body: Callable[[Tensor], Tensor] | None = None

    @property
    def name(self) -> str:
        """The model's name, for messages."""
        return self.descriptor.name

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    @property
    def where(self) -> str:
        """Where the network runs, for messages: "cpu", "cuda" (the ncnn engine: "vulkan:0", "cpu ncnn")."""
        return self.device.type

    def prepared(self, height: int, width: int) -> PreparedGraph | None:
        """How whole HxW frames ran, where a later run can run them again without PyTorch
        (engines/openvino_engine/prepared.py); None for a runtime that cannot."""
        return None

    @abstractmethod
    def tile_for(self, height: int, width: int, batch: int) -> int:
        """The tile side for a batch of HxW frames: `--tile`, else the runtime's plan (0: whole frame)."""
        raise NotImplementedError

    def batch_for(self, height: int, width: int) -> int:
        """`--batch auto` for HxW frames: as many whole frames as fit in the device's free memory (1 on a CPU)."""
        return auto_batch(self.descriptor.activations_per_pixel, height, width, self.dtype, self.device)

    @torch.inference_mode()
    def upscale(self, frames: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """N x H x W x C (C = 3 or 4) uint8 or uint16 -> N x sH x sW x C, same type and depth.

        An alpha channel is upscaled by the model too, as a grey picture, so that its edges
        stay as sharp as the colour's. Frames in host memory for a CPU engine are converted there
        (engines/host_frames.py, which the prepared graphs share); others on the device.
        """
        if isinstance(frames, np.ndarray) and self.device.type == "cpu":
            y = self.upscale_rgb(torch.from_numpy(to_network(frames)))
            return from_network(y.numpy(), frames)
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
            # staging copy and no new pinned buffer each batch (engines/buffers.py).
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
        # Round half up, as engines/host_frames.py does.
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
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        """The frames through the network; a runtime wraps this for its per-call settings."""
        return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        if self.device.type == "cpu" and x.shape[0] > 1:
            # oneDNN's CPU deconvolutions sum in an order that depends on the batch size
            # (up to 3e-5 apart); one frame at a time keeps results independent of it, and
            # costs nothing on a CPU, where one frame already fills every core.
            return torch.cat([self._run_batch(frame[None]) for frame in x])
        return self._run_batch(x)

    @abstractmethod
    def _run_batch(self, x: Tensor) -> Tensor:
        """N x 3 x H x W float on `device` -> N x 3 x sH x sW float, tiled as planned."""
        raise NotImplementedError

    def _kept(self, store: TileStates) -> None:
        """What a frame's (or batch's) tile states cost, from the store they waited in."""
        self.kept_state_bytes = max(self.kept_state_bytes, store.peak_bytes)
        self.spilled_state_bytes = max(self.spilled_state_bytes, store.written_bytes)
        self.state_moves = store.moves
        self.states_device = store.device

    def _run_local(self, x: Tensor, tiling: ReceptiveField, tile: int | None = None) -> Tensor:
        """A purely local network in tiles widened by its receptive field; `tile`: as planned if None."""
        tile = self.tile_for(*x.shape[-2:], x.shape[0]) if tile is None else tile
        assert self.body is not None, "a receptive-field model runs through its runtime's body"
        out, self.tiles_run = upscale_local(self.body, x, self.descriptor.border, tiling, self.descriptor.scale, tile)
        return out

    def _run_blended(self, x: Tensor, tiling: Blended, tile: int) -> Tensor:
        """A community model in cross-faded tiles (close to untiled, not equal: said once per file)."""
        h, w = x.shape[-2:]
        tiles = plan_tiles(h, w, tile, tiling.multiple)
        self.tiles_run = len(tiles)
        if len(tiles) > 1:
            note_blended(self.descriptor)
        assert self.body is not None, "a community model runs through its runtime's body"
        return run_blended_tiled(self.body, x, tiles, tiling.margin, tiling.fade, self.descriptor.scale, tiling.align)

"""The ncnn engine: a packaged model's own `.param/.bin` graph run by the ncnn wheel, on a Vulkan
device (any GPU: AMD, Intel, NVIDIA, Apple through MoltenVK) or on the CPU.

Only the network runs in ncnn. Everything around it is the torch engine's own code on host
tensors, so that both engines give the same pixels for the same body output: `Upscaler.upscale`
(8/16-bit in and out, alpha, rounding), each architecture's padding and cut (`UpCunet.pad` /
`finish` for the SE models, `pad_frame` and the crop for the local ones) and the receptive-field
tiler (`run_local_tiled`). `NcnnUpscaler` is an `Upscaler`: image, video, queue, compare and bench
take either (`engine.choice.make_upscaler` picks one).

Tiles: a purely local model (Real-ESRGAN, waifu2x upconv_7) tiles with its receptive-field
margin, exactly; an SE model (Real-CUGAN, waifu2x cunet) runs whole frames through
`run_se_model`, the one place where exact SE-staged tiles on ncnn plug in. On Vulkan a frame runs
whole first; where the device runs out of memory, a local model retries with smaller tiles and
says so once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from remaster.arch.upcunet import UpcunetPadding
from remaster.engine.device import MIN_TILE, auto_tile, resolve_device, resolve_precision
from remaster.engine.local_tiling import pad_frame, run_local_tiled
from remaster.engine.precision import Precision
from remaster.engine.tiling import plan_tiles
from remaster.engine.upscaler import TILE_MULTIPLE, EngineSettings, Upscaler, parse_tile
from remaster.engine.vulkan import FP16_FLAGS, VULKAN, import_ncnn, vulkan_device
from remaster.errors import RemasterError, ResourceError, UsageError, WeightsError
from remaster.models.descriptor import LoadedModel, ModelDescriptor, ReceptiveField

# ncnn's return code for a failed allocation (layer.h: "return -100" where a blob is empty),
# on the host or, with Vulkan, in device memory.
NCNN_ALLOCATION_FAILED = -100


class DeviceMemoryError(ResourceError):
    """ncnn could not allocate a blob: the tile (or the whole frame) does not fit."""


def ncnn_files(descriptor: ModelDescriptor) -> tuple[Path, Path] | None:
    """The `.param` and `.bin` a model was read from (`source` is "X.param + X.bin", as the
    ncnn loaders write it); None for a PyTorch checkpoint, which ncnn cannot run."""
    param, plus, bin_name = descriptor.source.rpartition(" + ")
    if not plus or not param.endswith(".param"):
        return None
    return Path(param), Path(param).with_name(bin_name)


def cpu_threads() -> int:
    """Every core this process may use (ncnn's own default is the physical "big" cores only)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _graph_ends(param: Path) -> tuple[str, str]:
    """The input blob (the first layer's output) and the output blob (the last layer's output):
    `in0`/`out0` in Real-CUGAN's graphs, `data`/`output` in Real-ESRGAN's, `Input1`/`Eltwise4` in waifu2x's."""
    lines = [line.split() for line in param.read_text().splitlines()[2:] if line.strip()]
    first, last = lines[0], lines[-1]
    # A layer line: type name n_in n_out inputs... outputs... keys...
    first_out = first[4 + int(first[2])]
    last_out = last[4 + int(last[2])]
    return first_out, last_out


@dataclass(frozen=True)
class NcnnTarget:
    """Where a graph runs: a Vulkan device's index (None: the CPU), fp16 or not, CPU threads."""

    vulkan: int | None
    fp16: bool
    threads: int

    @property
    def name(self) -> str:
        return "cpu" if self.vulkan is None else f"{VULKAN}:{self.vulkan}"


class NcnnNet:
    """One ncnn graph loaded for one target; `run` takes and gives N x C x H x W float32 host tensors.

    `param`, `bin` and `target` are kept for whoever builds more graphs on the same device with
    the same options (the SE stage sub-graphs of `run_se_model`)."""

    def __init__(self, param: Path, bin_path: Path, target: NcnnTarget):
        ncnn = import_ncnn()
        if ncnn is None:
            raise UsageError("the ncnn engine needs the ncnn package (pip install 'remaster[vulkan]')")
        self.param, self.bin, self.target = param, bin_path, target
        self._ncnn = ncnn
        net = ncnn.Net()
        net.opt.use_vulkan_compute = target.vulkan is not None
        if target.vulkan is not None:
            net.set_vulkan_device(target.vulkan)
        for flag in FP16_FLAGS:
            setattr(net.opt, flag, target.fp16)
        # bf16 storage would turn Vulkan off (net.cpp) and is not what `--precision` asked for.
        net.opt.use_bf16_storage = False
        net.opt.num_threads = target.threads
        if net.load_param(str(param)) != 0 or net.load_model(str(bin_path)) != 0:
            raise WeightsError(f"{param}: ncnn cannot load this graph and its {bin_path.name}")
        self.input_blob, self.output_blob = _graph_ends(param)
        self.net = net

    def run(self, x: Tensor) -> Tensor:
        """The graph's output for each frame of `x`, one frame at a time."""
        outputs = []
        for frame in x.float().cpu():
            extractor = self.net.create_extractor()
            # Cloned: a Mat wrapping the array has channels w x h floats apart, where ncnn's own
            # Mats round that up to 16 bytes; the Vulkan upload assumes the latter (a frame whose
            # w x h is not a multiple of 4 came back scrambled, 12 dB; the CPU path reads either).
            # The array is named: the wrapping Mat does not keep it alive until the clone.
            pixels = np.ascontiguousarray(frame.numpy())
            mat = self._ncnn.Mat(pixels).clone()
            extractor.input(self.input_blob, mat)
            code, out = extractor.extract(self.output_blob)
            if code == NCNN_ALLOCATION_FAILED:
                raise DeviceMemoryError(
                    f"{self.target.name}: out of memory on a {frame.shape[2]}x{frame.shape[1]} input"
                )
            if code != 0:
                raise RemasterError(f"{self.param.name}: ncnn failed on {self.target.name} (code {code})")
            outputs.append(torch.from_numpy(np.array(out)))
        return torch.stack(outputs)


def run_se_model(net: NcnnNet, geometry: UpcunetPadding, padded: Tensor, tile: int) -> Tensor:
    """The body output of an SE model (Real-CUGAN, waifu2x cunet) for one padded frame.

    THE PLUG-IN POINT for exact SE-staged tiles on ncnn (issue 15 item 2, engine/ncnn_stages.py):
    - `net`: the whole graph, loaded; `net.param`, `net.bin` and `net.target` (Vulkan index or
      None for the CPU, fp16, threads) are what the stage sub-graphs are built from, once;
    - `geometry`: the model's `UpCunet.geometry` (pad, align, scale, SE map resolutions);
    - `padded`: 1 x 3 x H x W float32 on the host, as `UpCunet.pad` gives it;
    - `tile`: the tile side in input pixels, 0 for the whole frame; the tiles are the plug-in's
      to plan over the core (H and W less 2 x `geometry.pad`), at its own multiple;
    - returns 1 x 3 x scale*(H - 2 pad) x scale*(W - 2 pad) or the whole graph's output for
      `padded` (larger), float32 on the host: `UpCunet.finish` cuts either to the frame;
    - raises DeviceMemoryError (from `NcnnNet.run`) where a tile does not fit: the caller retries
      with half the tile.
    Until that tiler is in, every frame runs whole, whatever `tile` says (`SE_TILES`).
    """
    return net.run(padded)


# Whether `run_se_model` honours its `tile`: not until the SE-staged tiler is plugged in.
SE_TILES = False


class NcnnUpscaler(Upscaler):
    """An `Upscaler` whose network runs in ncnn; frames stay in host memory around it."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings):
        self.descriptor = loaded.descriptor
        files = ncnn_files(self.descriptor)
        if files is None:
            raise UsageError(
                f"{self.descriptor.source}: the ncnn engine runs ncnn .param/.bin models (the packaged ones), "
                "not PyTorch checkpoints; use --engine torch"
            )
        chosen = resolve_device(settings.device)
        self.target_device = chosen
        if chosen.type == VULKAN:
            self.dtype = resolve_precision(settings.precision, chosen)
            vulkan = chosen.index or 0
        elif chosen.type == "cpu":
            if settings.precision not in (Precision.AUTO, Precision.FP32):
                raise UsageError(f"precision {settings.precision}: the ncnn engine on a CPU runs fp32")
            self.dtype, vulkan = torch.float32, None
        else:
            raise UsageError(f"device {settings.device}: the ncnn engine runs on cpu or vulkan[:N]")
        # The frames, the padding and the cut stay on the host: ncnn copies each input to the device.
        self.device = torch.device("cpu")
        self.target = NcnnTarget(vulkan, self.dtype == torch.float16, cpu_threads())
        self.net = NcnnNet(*files, self.target)
        self.model = loaded.module  # for its pad and finish only; its weights are the same file's
        self.tiling = self.descriptor.tiling
        self.tile = parse_tile(settings.tile)
        self.kept_state_bytes = 0
        self.state_moves = 0
        self._said_whole = False

    @property
    def where(self) -> str:
        return f"{self.target.name}{' ncnn' if self.target.vulkan is None else ''}"

    @property
    def label(self) -> str:
        """Where the network runs, for messages: "vulkan:0 (llvmpipe ..., cpu, fp16)", "cpu (ncnn, 16 threads)"."""
        if self.target.vulkan is None:
            return f"cpu (ncnn, {self.target.threads} threads)"
        return vulkan_device(self.target.vulkan).label

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        if self.target.vulkan is not None:
            # ncnn does not say how much device memory is free: whole frames, smaller tiles where
            # they do not fit (`_run_local_shrinking`).
            return 0
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, torch.float32, self.device)

    def _run_batch(self, x: Tensor) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_shrinking(x, self._run_local_ncnn)
        if SE_TILES:
            return self._run_shrinking(x, self._run_se)
        tile = self.tile_for(*x.shape[-2:], x.shape[0])
        if tile and tile < max(x.shape[-2:]) and not self._said_whole:
            self._said_whole = True
            message = f"{self.descriptor.name} on ncnn runs whole frames (no SE-staged tiles on ncnn yet)"
            print(f"remaster: {message}", file=sys.stderr)
        try:
            return self._run_se(x, 0)
        except DeviceMemoryError as exc:
            raise DeviceMemoryError(
                f"{exc} (a whole frame of {self.descriptor.name}; SE models do not tile on ncnn yet: try --device cpu)"
            ) from None

    def _run_se(self, x: Tensor, tile: int) -> Tensor:
        model = self.model
        padded = model.pad(x.float()).contiguous()
        body = torch.cat([run_se_model(self.net, model.geometry, frame[None], tile) for frame in padded])
        return model.finish(body, x)

    def _run_shrinking(self, x: Tensor, run: Callable[[Tensor, int], Tensor]) -> Tensor:
        """`run(x, tile)`, retried with half the tile side while the device runs out of memory."""
        while True:
            tile = self.tile_for(*x.shape[-2:], x.shape[0])
            try:
                return run(x, tile)
            except DeviceMemoryError as exc:
                smaller = (tile or max(x.shape[-2:])) // 2 // TILE_MULTIPLE * TILE_MULTIPLE
                if smaller < MIN_TILE:
                    raise DeviceMemoryError(f"{exc}, even at tile {tile or 'whole frame'}") from None
                print(f"remaster: {exc}; retrying with tile {smaller}", file=sys.stderr)
                self.tile = smaller  # for the frames after this one too

    def _run_local_ncnn(self, x: Tensor, tile: int) -> Tensor:
        # The torch engine's `_run_local`, with the graph as the body.
        tiling = self.tiling
        assert isinstance(tiling, ReceptiveField)
        border = self.descriptor.border
        padded = pad_frame(x.float(), border).contiguous()
        h, w = x.shape[-2:]
        core_h, core_w = padded.shape[-2] - 2 * border.size, padded.shape[-1] - 2 * border.size
        tiles = plan_tiles(core_h, core_w, tile, tiling.multiple)
        s = self.descriptor.scale
        out = run_local_tiled(self.net.run, padded, tiles, border.size, tiling.margin, s, tiling.consumed)
        return out[..., : s * h, : s * w].float()

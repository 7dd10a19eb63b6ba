"""The ncnn engine: a packaged model's own `.param/.bin` graph run by the ncnn wheel, on a Vulkan
device (any GPU: AMD, Intel, NVIDIA, Apple through MoltenVK) or on the CPU.

Only the network runs in ncnn. Everything around it is the torch engine's own code on host
tensors, so that both engines give the same pixels for the same body output: `Upscaler.upscale`
(8/16-bit in and out, alpha, rounding), each architecture's padding and cut (`UpCunet.pad` /
`finish` for the SE models, `pad_frame` and the crop for the local ones) and the receptive-field
tiler (`run_local_tiled`). `NcnnUpscaler` is an `Upscaler`: image, video, queue, compare and bench
take either (`engine.choice.make_upscaler` picks one).

Tiles, exact for every family: a purely local model (Real-ESRGAN, waifu2x upconv_7) tiles with
its receptive-field margin; an SE model (Real-CUGAN, waifu2x cunet) runs its graph cut into stage
sub-graphs at the SE means, tile by tile with whole-frame means (`run_se_model`, engines/ncnn_engine/stages.py).
On Vulkan `--tile auto` plans with the device's memory budget (whole frames where they fit);
where the device still runs out of memory, the frame is retried with half the tile side, said in
one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from remaster.architectures.descriptor import LoadedModel, ModelDescriptor, ReceptiveField
from remaster.architectures.realcugan.geometry import UpcunetPadding
from remaster.core.errors import RemasterError, ResourceError, UsageError, WeightsError
from remaster.core.machine import cpu_threads
from remaster.core.precision import Precision
from remaster.engines.base import Upscaler
from remaster.engines.device import (
    MIN_TILE,
    auto_tile,
    fit_tile,
    resolve_device,
    resolve_precision,
)
from remaster.engines.settings import TILE_MULTIPLE, EngineSettings
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles
from remaster.engines.vulkan import VULKAN, import_ncnn, vulkan_device
from remaster.models.ncnn import read_layers

if TYPE_CHECKING:  # ncnn_stages imports the ncnn wheel: only where the engine runs
    from remaster.engines.ncnn_engine.net import NcnnOptions
    from remaster.engines.ncnn_engine.stages import NcnnStages

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


def _graph_ends(param: Path) -> tuple[str, str]:
    """The input blob (the first layer's output) and the output blob (the last layer's output):
    `in0`/`out0` in Real-CUGAN's graphs, `data`/`output` in Real-ESRGAN's, `Input1`/`Eltwise4` in waifu2x's."""
    layers = read_layers(param)
    return layers[0].outputs[0], layers[-1].outputs[0]


@dataclass(frozen=True)
class NcnnTarget:
    """Where a graph runs: a Vulkan device's index (None: the CPU), fp16 or not, CPU threads."""

    vulkan: int | None
    fp16: bool
    threads: int

    @property
    def name(self) -> str:
        return "cpu" if self.vulkan is None else f"{VULKAN}:{self.vulkan}"

    def options(self) -> NcnnOptions:
        """The same target as ncnn_stages' options, so that the whole graph and its stage
        sub-graphs are set up alike (fp16's Winograd choice included: see `new_net`)."""
        from remaster.engines.ncnn_engine.net import NcnnOptions

        return NcnnOptions(self.vulkan is not None, self.vulkan or 0, self.fp16, self.threads)


class NcnnNet:
    """One ncnn graph loaded for one target; `run` takes and gives N x C x H x W float32 host tensors.

    For an SE model, `stages` are the same graph cut at its SE means (engines/ncnn_engine/stages.py),
    built on first use: only a frame in several tiles needs them."""

    def __init__(self, param: Path, bin_path: Path, target: NcnnTarget):
        ncnn = import_ncnn()
        if ncnn is None:
            raise UsageError("the ncnn engine needs the ncnn package (pip install 'remaster[vulkan]')")
        # Here, not at the top: ncnn_stages imports the wheel, which the torch engine does without.
        from remaster.engines.ncnn_engine.net import new_net

        self.param, self.bin, self.target = param, bin_path, target
        self._ncnn = ncnn
        net = new_net(target.options())
        self._pools: tuple = ()
        if target.vulkan is not None:
            # The net's own device-memory pools, so that a frame that ran out of memory can give
            # back what it had taken before the retry (`release`): the device's shared pools keep it.
            device = ncnn.get_gpu_device(target.vulkan)
            self._pools = (ncnn.VkBlobAllocator(device), ncnn.VkStagingAllocator(device))
            net.opt.blob_vkallocator = net.opt.workspace_vkallocator = self._pools[0]
            net.opt.staging_vkallocator = self._pools[1]
        if net.load_param(str(param)) != 0 or net.load_model(str(bin_path)) != 0:
            raise WeightsError(f"{param}: ncnn cannot load this graph and its {bin_path.name}")
        self.input_blob, self.output_blob = _graph_ends(param)
        self.net = net
        self._stages: NcnnStages | None = None

    @property
    def stages(self) -> NcnnStages:
        from remaster.engines.ncnn_engine.stages import NcnnStages

        if self._stages is None:
            self._stages = NcnnStages(self.param, self.bin, self.target.options())
        return self._stages

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
            code, out = NCNN_ALLOCATION_FAILED, None
            # A clone that could not allocate is an empty Mat, which the graph would run on
            # without a word: out of memory as well.
            if not mat.empty():
                extractor.input(self.input_blob, mat)
                code, out = extractor.extract(self.output_blob)
            if code == NCNN_ALLOCATION_FAILED or (code == 0 and out.empty()):
                del extractor, out
                for pool in self._pools:
                    pool.clear()
                raise DeviceMemoryError(
                    f"{self.target.name}: out of memory on a {frame.shape[2]}x{frame.shape[1]} input"
                )
            if code != 0:
                raise RemasterError(f"{self.param.name}: ncnn failed on {self.target.name} (code {code})")
            outputs.append(torch.from_numpy(np.array(out)))
        return torch.stack(outputs)


def run_se_model(
    net: NcnnNet, geometry: UpcunetPadding, padded: Tensor, tile: int, store: TileStates | None = None
) -> tuple[Tensor, int]:
    """The body output of an SE model (Real-CUGAN, waifu2x cunet) for one padded frame
    (1 x 3 x H x W float32 on the host, as `UpCunet.pad` gives it), in tiles of `tile` input
    pixels (0: whole). One tile runs the whole graph (one upload and download on Vulkan); several
    run its stage sub-graphs tile by tile with whole-frame SE means (engines/ncnn_engine/stages.py), the
    untiled result. Tiles start at ncnn_stages' `tile_multiple` (fp16 aligns Winograd blocks).
    `store`: where tile states wait between stages (in memory up to its budget, then on disk).
    Returns the body output and the number of tiles it ran in.
    Raises DeviceMemoryError where a tile does not fit, for the caller to retry smaller."""
    from remaster.engines.ncnn_engine.stages import run_staged_tiled, tile_multiple

    core_h, core_w = padded.shape[-2] - 2 * geometry.pad, padded.shape[-1] - 2 * geometry.pad
    tiles = plan_tiles(core_h, core_w, tile, tile_multiple(geometry, net.target.options()))
    if len(tiles) == 1:
        return net.run(padded), 1
    try:
        body = run_staged_tiled(net.stages, padded[0].numpy(), tiles, geometry, store)
    except RuntimeError as exc:
        # ncnn_stages says which status ncnn gave; -100 is a failed allocation (NCNN_ALLOCATION_FAILED).
        if f"(status {NCNN_ALLOCATION_FAILED})" in str(exc):
            raise DeviceMemoryError(f"{net.target.name}: out of memory in a tile of {tile}") from None
        raise RemasterError(f"{net.param.name}: {exc} on {net.target.name}") from None
    return torch.from_numpy(body)[None], len(tiles)


class NcnnUpscaler(Upscaler):
    """An `Upscaler` whose network runs in ncnn; frames stay in host memory around it."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings):
        files = ncnn_files(loaded.descriptor)
        if files is None:
            raise UsageError(
                f"{loaded.descriptor.source}: the ncnn engine runs ncnn .param/.bin models (the packaged ones), "
                "not PyTorch checkpoints; use --engine torch"
            )
        chosen = resolve_device(settings.device)
        if chosen.type == VULKAN:
            dtype = resolve_precision(settings.precision, chosen)
            vulkan = chosen.index or 0
        elif chosen.type == "cpu":
            if settings.precision not in (Precision.AUTO, Precision.FP32):
                raise UsageError(f"precision {settings.precision}: the ncnn engine on a CPU runs fp32")
            dtype, vulkan = torch.float32, None
        else:
            raise UsageError(f"device {settings.device}: the ncnn engine runs on cpu or vulkan[:N]")
        # The frames, the padding and the cut stay on the host: ncnn copies each input to the device.
        # Tile states too wait in host memory between SE stages up to the budget, then on disk.
        super().__init__(loaded, torch.device("cpu"), dtype, settings)
        self.target = NcnnTarget(vulkan, self.dtype == torch.float16, cpu_threads())
        self.net = NcnnNet(*files, self.target)
        self.body = self.net.run  # for the shared receptive-field tiler (`Upscaler._run_local`)
        self.model = loaded.module  # for its pad and finish only; its weights are the same file's

    @property
    def where(self) -> str:
        return f"{self.target.name}{' ncnn' if self.target.vulkan is None else ''}"

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        if self.target.vulkan is not None:
            return self._vulkan_tile(height, width)
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, torch.float32, self.device)

    def _vulkan_tile(self, height: int, width: int) -> int:
        """The torch engine's rule (`fit_tile`) on the device's memory budget: whole frames where
        the activations fit in a share of it. The figure is ncnn's budget, not what is free now,
        and the activations are the torch engine's estimate: where a plan is still too large,
        `_run_shrinking` halves the tile."""
        budget = vulkan_device(self.target.vulkan or 0).memory
        itemsize = 2 if self.target.fp16 else 4
        return fit_tile(budget, self.descriptor.activations_per_pixel, height, width, 1, itemsize)

    def _run_batch(self, x: Tensor) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_shrinking(x, self._run_local_ncnn)
        return self._run_shrinking(x, self._run_se)

    def _run_se(self, x: Tensor, tile: int) -> Tensor:
        model = self.model
        padded = model.pad(x.float()).contiguous()
        bodies = []
        for frame in padded:
            with TileStates(self.device, self.state_memory) as store:
                body, self.tiles_run = run_se_model(self.net, model.geometry, frame[None], tile, store)
                bodies.append(body)
            self._kept(store)
        return model.finish(torch.cat(bodies), x)

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
        assert isinstance(self.tiling, ReceptiveField)
        return self._run_local(x, self.tiling, tile)  # the shared tiler, with the graph as `body`

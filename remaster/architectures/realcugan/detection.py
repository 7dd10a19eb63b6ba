"""Real-CUGAN (`UpCunet`): detection, building from a state dict, and its description."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from remaster.architectures.descriptor import (
    Border,
    Denoise,
    Family,
    LoadedModel,
    ModelDescriptor,
    PadMode,
    RealcuganVariant,
    SeStages,
)
from remaster.architectures.origin import Origin, load_strict
from remaster.architectures.realcugan.geometry import geometry_for
from remaster.architectures.realcugan.network import UpCunet
from remaster.core.errors import WeightsError

NAME = "UpCunet"
# Values per input pixel alive at once in the untiled body, batch 1: the peak resident memory
# of a whole-frame CPU run less the process's own, per pixel per value (640x360 and 1920x1080,
# benchmarks/memory.py: 2x 1130, 3x 2560, 4x 1430), plus 25%. 3x is the largest because its
# unet2 runs at 3x the input resolution.
ACTIVATIONS_PER_PIXEL = {2: 1400, 3: 3200, 4: 1800}
# Tile sides must be a multiple of 4 so that every tile's maps at every down-sampling level
# (down to 1/4 of the input, or 3/4 for 3x) are exact windows of the whole frame's maps.
TILE_MULTIPLE = 4


def detect(state: Mapping[str, Tensor]) -> bool:
    # A 3 x 64 x 3 x 3 unet1 bottom is a convolution, not Real-CUGAN's deconvolution: waifu2x's 1x cunet.
    bottom = state.get("unet1.conv_bottom.weight")
    waifu2x_1x = bottom is not None and tuple(bottom.shape) == (3, 64, 3, 3)
    return "unet1.conv1.conv.0.weight" in state and "unet2.conv_bottom.weight" in state and not waifu2x_1x


def ncnn_layer_names(se: bool, scale: int) -> list[str]:
    """The module's weighted layers in the order the ncnn graphs store them."""
    names: list[str] = []

    def unet_conv(prefix: str, has_se: bool) -> None:
        names.extend([f"{prefix}.conv.0", f"{prefix}.conv.2"])
        if has_se and se:
            names.extend([f"{prefix}.seblock.conv1", f"{prefix}.seblock.conv2"])

    unet_conv("unet1.conv1", False)
    names.append("unet1.conv1_down")
    unet_conv("unet1.conv2", True)
    names.extend(["unet1.conv2_up", "unet1.conv3", "unet1.conv_bottom"])
    unet_conv("unet2.conv1", False)
    names.append("unet2.conv1_down")
    unet_conv("unet2.conv2", True)
    names.append("unet2.conv2_down")
    unet_conv("unet2.conv3", True)
    names.append("unet2.conv3_up")
    unet_conv("unet2.conv4", True)
    names.extend(["unet2.conv4_up", "unet2.conv5", "unet2.conv_bottom"])
    if scale == 4:
        names.append("conv_final")
    return names


def _scale(state: Mapping[str, Tensor], source: str) -> int:
    if "conv_final.weight" in state:
        return 4
    bottom = state.get("unet1.conv_bottom.weight")
    if bottom is None or bottom.dim() != 4:
        raise WeightsError(f"{source}: not a Real-CUGAN checkpoint (no unet1.conv_bottom)")
    # ConvTranspose2d weight [in][out][k][k]: kernel 4 (stride 2) for 2x, 5 (stride 3) for 3x.
    scale = {4: 2, 5: 3}.get(bottom.shape[-1])
    if scale is None:
        raise WeightsError(f"{source}: unet1.conv_bottom has kernel {bottom.shape[-1]}, not Real-CUGAN's 4 or 5")
    return scale


def load(state: Mapping[str, Tensor], origin: Origin) -> LoadedModel:
    """An official upcunet_v3.py state dict (a `pro` key marks the original Pro checkpoints)."""
    pro = "pro" in state
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor) and k != "pro"}
    scale = _scale(tensors, origin.source)
    module = UpCunet(scale, se="unet1.conv2.seblock.conv1.weight" in tensors, pro_io_transform=pro)
    load_strict(module, tensors, origin.source, f"Real-CUGAN {scale}x")
    if origin.variant:
        variant = RealcuganVariant(origin.variant)
    else:
        variant = RealcuganVariant.PRO if pro else (RealcuganVariant.SE if module.has_se else RealcuganVariant.NOSE)
    g = geometry_for(scale)
    descriptor = ModelDescriptor(
        name=origin.name,
        family=Family.REALCUGAN,
        architecture=NAME,
        scale=scale,
        source=origin.source,
        tiling=SeStages(TILE_MULTIPLE),
        border=Border(PadMode.REFLECT, g.pad, g.align),
        activations_per_pixel=ACTIVATIONS_PER_PIXEL[scale],
        min_size=g.pad + g.align,
        variant=variant,
        denoise=Denoise(origin.denoise or Denoise.UNKNOWN),
        pro_io_transform=pro,
    )
    return LoadedModel(module, descriptor)

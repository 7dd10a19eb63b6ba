"""waifu2x's cunet (an UpCunet, 1x and 2x): detection, building, description.

It pads the frame by replicating its edge, as waifu2x-ncnn-vulkan does (src/waifu2x.cpp,
copy_make_border BORDER_REPLICATE), by its receptive margin (src/main.cpp `prepadding`): 2x 18,
1x 28. It tiles like Real-CUGAN, in SE stages (its four SE blocks gate maps by whole-frame means);
`Waifu2xCunet` subclasses `UpCunet` and brings its own border and alignment.

The 1x cunet's layout is waifu2x's own (unet1 ends in a 3x3 convolution to 3 channels) and is
detected from its tensors; the 2x cunet's layout is exactly Real-CUGAN 2x's, so a file is taken
as waifu2x only when its origin says so (`Origin.family`), as the packaged files' loader does.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from remaster.architectures.descriptor import (
    Border,
    Family,
    LoadedModel,
    ModelDescriptor,
    PadMode,
    SeStages,
)
from remaster.architectures.origin import Origin, load_strict
from remaster.architectures.realcugan.detection import ACTIVATIONS_PER_PIXEL as REALCUGAN_ACTIVATIONS
from remaster.architectures.realcugan.detection import TILE_MULTIPLE
from remaster.architectures.waifu2x_cunet.network import GEOMETRY, Waifu2xCunet

CUNET = "Waifu2xCunet"
# Values per input pixel alive at once, untiled, batch 1, by scale; measured with
# `benchmarks/memory.py --size 256x192,512x384` and `--size 640x360,1280x720 --tiles 0` (fp32,
# CPU): the growth of the peak RSS between the two sizes over the growth in pixels, in 4-byte
# values, the larger of the two pairs, plus 25% as for Real-CUGAN. cunet 2x is Real-CUGAN 2x's
# body and measures as it does (839 against 838 between 640x360 and 1280x720), so it takes
# Real-CUGAN 2x's figure; cunet 1x, whose unet2 runs at the input's resolution, measured 343
# and 299.
CUNET_ACTIVATIONS_PER_PIXEL = {1: 430, 2: REALCUGAN_ACTIVATIONS[2]}


def _bottom(state: Mapping[str, Tensor]) -> Tensor | None:
    bottom = state.get("unet1.conv_bottom.weight")
    return bottom if isinstance(bottom, Tensor) and bottom.dim() == 4 else None


def is_cunet_1x(state: Mapping[str, Tensor]) -> bool:
    """The 1x cunet: UpCunet's keys, with unet1 ending in a 64 -> 3 convolution (3 x 64 x 3 x 3)."""
    bottom = _bottom(state)
    return "unet1.conv1.conv.0.weight" in state and bottom is not None and tuple(bottom.shape) == (3, 64, 3, 3)


def detect_cunet(state: Mapping[str, Tensor]) -> bool:
    return is_cunet_1x(state)


def detect_cunet_hinted(state: Mapping[str, Tensor]) -> bool:
    """Under a waifu2x origin: the 1x layout, or the 2x one (Real-CUGAN 2x's, SE blocks, no 4x tail)."""
    bottom = _bottom(state)
    two_x = bottom is not None and tuple(bottom.shape) == (64, 3, 4, 4) and "conv_final.weight" not in state
    return is_cunet_1x(state) or (two_x and "unet1.conv2.seblock.conv1.weight" in state)



def load_cunet(state: Mapping[str, Tensor], origin: Origin) -> LoadedModel:
    """cunet at 1x or 2x, in UpCunet's key layout (the 1x bottom is a Conv2d)."""
    scale = 1 if is_cunet_1x(state) else 2
    module = Waifu2xCunet(scale)
    load_strict(module, state, origin.source, f"waifu2x cunet {scale}x")
    g = GEOMETRY[scale]
    descriptor = ModelDescriptor(
        name=origin.name,
        family=Family.WAIFU2X,
        architecture=CUNET,
        scale=scale,
        source=origin.source,
        # Tile starts at multiples of 4: the 1x SE maps are at 1/4 of the input (2x: 1/2).
        tiling=SeStages(TILE_MULTIPLE),
        border=Border(PadMode.REPLICATE, g.pad, g.align),
        activations_per_pixel=CUNET_ACTIVATIONS_PER_PIXEL[scale],
        min_size=1,  # replicate padding takes any size
        variant=origin.variant or "cunet",
        denoise=origin.denoise,
    )
    return LoadedModel(module, descriptor)

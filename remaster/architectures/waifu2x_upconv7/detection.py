"""waifu2x's upconv_7 (art and photo): detection, building, description.

It pads the frame by replicating its edge, as waifu2x-ncnn-vulkan does (src/waifu2x.cpp,
copy_make_border BORDER_REPLICATE), by its receptive margin (src/main.cpp `prepadding`): 7.
It is purely local and unpadded: a window with 7 pixels of context on every side gives exactly
its pixels at 2x, so it tiles by receptive field with the margin consumed, not cropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from remaster.architectures.descriptor import Border, Family, LoadedModel, ModelDescriptor, PadMode, ReceptiveField
from remaster.architectures.origin import Origin, load_strict
from remaster.architectures.waifu2x_upconv7.network import RECEPTIVE_MARGIN, Waifu2xUpconv7

UPCONV7 = "Waifu2xUpconv7"
# Values per input pixel alive at once, untiled, batch 1; measured with `benchmarks/memory.py`
# as for cunet (fp32, CPU): 392 and 395, plus 25% as for Real-CUGAN.
UPCONV7_ACTIVATIONS_PER_PIXEL = 500
UPCONV7_BORDER = Border(PadMode.REPLICATE, RECEPTIVE_MARGIN)


def detect_upconv7(state: Mapping[str, Tensor]) -> bool:
    return "convs.0.weight" in state and "convs.5.weight" in state and "deconv.weight" in state

def load_upconv7(state: Mapping[str, Tensor], origin: Origin) -> LoadedModel:
    module = Waifu2xUpconv7()
    load_strict(module, state, origin.source, "waifu2x upconv_7")
    descriptor = ModelDescriptor(
        name=origin.name,
        family=Family.WAIFU2X,
        architecture=UPCONV7,
        scale=module.scale,
        source=origin.source,
        # Unpadded convolutions: the margin is context the body uses up; no stride, so any tile start.
        tiling=ReceptiveField(RECEPTIVE_MARGIN, consumed=RECEPTIVE_MARGIN),
        border=UPCONV7_BORDER,
        activations_per_pixel=UPCONV7_ACTIVATIONS_PER_PIXEL,
        min_size=1,
        variant=origin.variant or "upconv_7",
        denoise=origin.denoise,
    )
    return LoadedModel(module, descriptor)

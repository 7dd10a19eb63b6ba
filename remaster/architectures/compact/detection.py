"""Real-ESRGAN's SRVGGNetCompact: detection, building from a state dict, and its description."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from torch import Tensor, nn

from remaster.architectures.compact.network import SRVGGNetCompact
from remaster.architectures.descriptor import Border, Family, LoadedModel, ModelDescriptor, PadMode, ReceptiveField
from remaster.architectures.origin import Origin, load_strict
from remaster.core.errors import WeightsError

NAME = "SRVGGNetCompact"
# realesrgan-ncnn-vulkan pads every tile by `prepadding = 10` before the network and crops it
# after (its main.cpp); the reference runner realesrgan-ncnn-py does the same on the CPU, by
# reflection: against it, reflect padding of 10 gives 86-92 dB, replicate 37-41, none 37-43
# (fp32, 2x/3x/4x, a 67x45 cel and a 56x40 photo).
BORDER = Border(PadMode.REFLECT, 10)
# Values per input pixel alive at once, untiled, batch 1: measured with `benchmarks/memory.py
# --size 256x192,512x384` and `--size 640x360,1280x720 --tiles 0` (fp32, CPU), the growth of the
# peak RSS between the two sizes over the growth in pixels, in 4-byte values: 119 and 142 for
# realesr-animevideov3 2x, 119 and 141 for 4x (the 2x/3x graphs run the 4x body); the larger,
# plus 25% as for Real-CUGAN.
ACTIVATIONS_PER_PIXEL = 180
_BODY_KEY = re.compile(r"body\.(\d+)\.weight")


def detect(state: Mapping[str, Tensor]) -> bool:
    # The PReLU variant (every released Compact model): body.1 is a PReLU with one slope a channel.
    first, act = state.get("body.0.weight"), state.get("body.1.weight")
    return first is not None and first.dim() == 4 and act is not None and act.dim() == 1


def load(state: Mapping[str, Tensor], origin: Origin) -> LoadedModel:
    """An official srvgg_arch.py state dict (`body.N.weight`/`bias`), PReLU activations."""
    last = max(int(m.group(1)) for key in state if (m := _BODY_KEY.fullmatch(key)))
    num_feat, num_in_ch = state["body.0.weight"].shape[:2]
    # body: conv, act, then num_conv x (conv, act), then the last conv.
    num_conv = (last - 2) // 2
    upscale = math.isqrt(state[f"body.{last}.weight"].shape[0] // num_in_ch)
    if upscale < 1 or num_in_ch * upscale * upscale != state[f"body.{last}.weight"].shape[0]:
        raise WeightsError(f"{origin.source}: the last Compact layer's channels are not 3 x scale^2")
    module = SRVGGNetCompact(num_in_ch, num_in_ch, num_feat, num_conv, upscale, "prelu", origin.out_scale)
    load_strict(module, state, origin.source, "SRVGGNetCompact")
    variant = origin.variant or "compact"
    descriptor = realesrgan_descriptor(origin, NAME, module, num_in_ch, ACTIVATIONS_PER_PIXEL, variant)
    return LoadedModel(module, descriptor)


def realesrgan_descriptor(
    origin: Origin, architecture: str, module: nn.Module, channels: int, activations_per_pixel: int, variant: str
) -> ModelDescriptor:
    """A Real-ESRGAN network's description. Compact and RRDBNet alike are purely local (tiles
    overlap by the receptive radius), and the reference runner pads every model the same way."""
    return ModelDescriptor(
        name=origin.name,
        family=Family.REALESRGAN,
        architecture=architecture,
        scale=module.scale,
        source=origin.source,
        tiling=ReceptiveField(module.receptive_radius),
        border=BORDER,
        activations_per_pixel=activations_per_pixel,
        min_size=BORDER.size + 1,
        variant=variant,
        channels=channels,
    )

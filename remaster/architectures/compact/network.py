"""SRVGGNetCompact, Real-ESRGAN's compact network (realesr-animevideov3, community "Compact" models).

Transcribed from xinntao/Real-ESRGAN `realesrgan/archs/srvgg_arch.py` (BSD-3-Clause): a first
3x3 convolution, `num_conv` more, each followed by an activation, a last 3x3 convolution to
`num_out_ch * upscale**2` channels, a pixel shuffle, plus the nearest-neighbour upscale of the
input. Every convolution is zero-padded by 1, so the network is purely local: an output pixel
depends on the input within `receptive_radius` pixels, and a tile cut with that much real
context around it gives exactly the untiled pixels (`remaster.engines.tiling.local`).

The 2x and 3x realesr-animevideov3 files are the 4x network followed by a bicubic downscale by
0.5 or 0.75 (their last `.param` line: `Interp ... 0=3`, ncnn's bicubic); `out_scale` adds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# srvgg_arch.py: nn.Conv2d(..., 3, 1, 1) for every convolution: kernel 3, stride 1, padding 1.
KERNEL = 3
PADDING = 1
# srvgg_arch.py, act_type 'leakyrelu': nn.LeakyReLU(negative_slope=0.1).
LEAKY_SLOPE = 0.1
# A bicubic output pixel reads 4 source pixels, from floor(f) - 1 to floor(f) + 2 (ncnn's
# interp.cpp and PyTorch alike). Downscaling 4x-resolution maps by 0.5 or 0.75, those reach at
# most one input pixel past the output pixel's own (worked out for both factors in
# docs/engine.md), so the resize widens the receptive field by 1.
RESIZE_RADIUS = 1


class SRVGGNetCompact(nn.Module):
    """The network on float RGB in [0, 1], N x C x H x W -> N x C x sH x sW, s = `out_scale`.

    Key names are those of srvgg_arch.py (`body.0.weight` ... `body.{2 num_conv + 2}.bias`), so
    official checkpoints load as they are.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
        out_scale: int | None = None,
    ):
        super().__init__()
        if act_type not in ("relu", "prelu", "leakyrelu"):
            raise ValueError(f"SRVGGNetCompact has relu, prelu and leakyrelu activations, not {act_type!r}")
        self.upscale = upscale
        self.out_scale = out_scale or upscale
        self.num_conv = num_conv
        layers: list[nn.Module] = []
        for index in range(num_conv + 1):
            layers.append(nn.Conv2d(num_in_ch if index == 0 else num_feat, num_feat, KERNEL, 1, PADDING))
            layers.append(_activation(act_type, num_feat))
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, KERNEL, 1, PADDING))
        self.body = nn.ModuleList(layers)

    @property
    def scale(self) -> int:
        return self.out_scale

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output pixel depends on, on every side."""
        convolutions = self.num_conv + 2
        return convolutions * (KERNEL // 2) + (RESIZE_RADIUS if self.out_scale != self.upscale else 0)

    # The first layer reads the picture and the last one writes it: float32 at any precision,
    # for the reasons UpCunet.FLOAT32_LAYERS gives (bf16 cannot hold every 8-bit level).
    def _keeps_float32(self, index: int) -> bool:
        return index in (0, len(self.body) - 1)

    def set_precision(self, dtype: torch.dtype) -> SRVGGNetCompact:
        """Every layer but the first and last convolutions (and their activations) in `dtype`."""
        for index, layer in enumerate(self.body):
            owner = index - 1 if isinstance(layer, nn.PReLU) else index
            if not self._keeps_float32(owner):
                layer.to(dtype)
        return self

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            weight = next(layer.parameters(), None)
            out = layer(out if weight is None else out.to(weight.dtype))
        out = F.pixel_shuffle(out.float(), self.upscale)
        # The residual: each input pixel added to its upscale x upscale block (srvgg_arch.py's
        # F.interpolate(x, scale_factor=upscale, mode='nearest')), without making the block.
        h, w = x.shape[-2:]
        u = self.upscale
        out.unflatten(-1, (w, u)).unflatten(-3, (h, u)).add_(x.float()[:, :, :, None, :, None])
        if self.out_scale != self.upscale:
            # By size, not factor: PyTorch then maps output to source coordinates with in/out,
            # as ncnn's Interp does (a factor of 0.75 would use 1/0.75 rounded).
            size = (h * self.out_scale, w * self.out_scale)
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False)
        return out


def _activation(act_type: str, channels: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)
    return nn.ReLU(inplace=True)

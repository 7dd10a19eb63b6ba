"""RRDBNet, the ESRGAN network of Real-ESRGAN's RealESRGAN_x4plus (23 blocks) and x4plus_anime_6B (6).

Transcribed from XPixelGroup/BasicSR `basicsr/archs/rrdbnet_arch.py` (Apache-2.0), which
Real-ESRGAN builds its x4plus models with: a first 3x3 convolution, `num_block` residual-in-
residual dense blocks (three dense blocks of five convolutions each), a body convolution added
to the first one's output, then two nearest 2x upsamplings each followed by a convolution, and
two more convolutions at the output's resolution. Every convolution is zero-padded by 1: the
network is purely local (see `receptive_radius`). Only the 4x form is here; rrdbnet_arch.py's 2x
and 1x forms pixel-unshuffle the input first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# rrdbnet_arch.py: nn.LeakyReLU(negative_slope=0.2) everywhere; in the ncnn graphs
# `9=2 -23310=1,2.000000e-01` on the convolutions.
LEAKY_SLOPE = 0.2
# rrdbnet_arch.py: "we use 0.2 to scale the residual", in ResidualDenseBlock and RRDB alike; in
# the ncnn graphs `Eltwise ... -23301=2,2.000000e-01,1.000000e+00`.
RESIDUAL_SCALE = 0.2
# Convolutions per dense block and dense blocks per RRDB (rrdbnet_arch.py: conv1..conv5, rdb1..rdb3).
DENSE_CONVS = 5
DENSE_BLOCKS = 3
# Input pixels of context the 4x tail adds: conv_up1 at 2x and conv_up2, conv_hr, conv_last at
# 4x, behind nearest upsamplings. Worked out for the output pixels of input pixel c: they need
# 4x pixels 4c-3 .. 4c+6, hence 2x pixels 2c-3 .. 2c+4, hence input pixels c-2 .. c+2.
TAIL_RADIUS = 2
UPSCALE = 4


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    # rrdbnet_arch.py: nn.Conv2d(c_in, c_out, 3, 1, 1) for every layer.
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


def _run(layer: nn.Conv2d, x: Tensor) -> Tensor:
    """Run `layer` in its own precision (the first and last layers stay float32)."""
    return layer(x.to(layer.weight.dtype))


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.conv1 = _conv(num_feat, num_grow_ch)
        self.conv2 = _conv(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = _conv(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = _conv(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = _conv(num_feat + 4 * num_grow_ch, num_feat)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(_lrelu(_run(conv, torch.cat(features, 1))))
        return _run(self.conv5, torch.cat(features, 1)).mul_(RESIDUAL_SCALE).add_(x)


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))).mul_(RESIDUAL_SCALE).add_(x)


class RRDBNet(nn.Module):
    """4x RRDBNet on float RGB in [0, 1], N x C x H x W -> N x C x 4H x 4W; rrdbnet_arch.py's key names."""

    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32
    ):
        super().__init__()
        self.num_block = num_block
        self.conv_first = _conv(num_in_ch, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = _conv(num_feat, num_feat)
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, num_out_ch)

    @property
    def scale(self) -> int:
        return UPSCALE

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output pixel depends on, on every side."""
        at_input_resolution = 2 + self.num_block * DENSE_BLOCKS * DENSE_CONVS  # conv_first, the blocks, conv_body
        return at_input_resolution + TAIL_RADIUS

    def set_precision(self, dtype: torch.dtype) -> RRDBNet:
        """Every convolution but the first (reads the picture) and the last (writes it) in `dtype`."""
        for name, layer in self.named_modules():
            if isinstance(layer, nn.Conv2d) and name not in ("conv_first", "conv_last"):
                layer.to(dtype)
        return self

    def forward(self, x: Tensor) -> Tensor:
        feat = _run(self.conv_first, x)
        feat = feat + _run(self.conv_body, self.body(feat.to(self.conv_body.weight.dtype)))
        feat = _lrelu(_run(self.conv_up1, F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(_run(self.conv_up2, F.interpolate(feat, scale_factor=2, mode="nearest")))
        return _run(self.conv_last, _lrelu(_run(self.conv_hr, feat))).float()

"""UpCunet, the Real-CUGAN network: one module for 2x, 3x and 4x, with or without SE blocks.

Transcribed from bilibili/ailab Real-CUGAN `upcunet_v3.py` (MIT), where it is three classes
(UpCunet2x, UpCunet3x, UpCunet4x) with three forward variants each. Here the differences are
parameters: the unet1 bottom layer, the channel count between the two U-Nets, and the 4x tail.

The body is cut into five stages at the four SE blocks. An SE block gates a feature map by its
*global* mean, so a tiled run that wants the untiled result must know each mean before any tile
goes past that point (see `remaster.engines.tiling.tiles`). Untiled, the stages simply run in a row.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from remaster.architectures.realcugan.geometry import geometry_for

# Every activation in upcunet_v3.py is nn.LeakyReLU(0.1); in the ncnn graphs it is
# `9=2 -23310=1,1.000000e-01` on each Convolution/Deconvolution.
LEAKY_SLOPE = 0.1
# SEBlock(in_channels, reduction=8, bias=True) in upcunet_v3.py.
SE_REDUCTION = 8

# The Pro models' input/output affine map, upcunet_v3.py: x / (255 / 0.7) + 0.15 on 0..255 input.
PRO_IN_SCALE = 0.7
PRO_OFFSET = 0.15

State = dict[str, Tensor]


def _lrelu(x: Tensor) -> Tensor:
    # In place: these maps are large and freshly made; a new buffer per activation costs
    # as much time on a CPU as the activation itself.
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


def _conv(layer: nn.Module, x: Tensor) -> Tensor:
    """Run `layer` in its own precision (some layers stay float32, see UpCunet.set_precision)."""
    return layer(x.to(next(layer.parameters()).dtype))


def _crop(x: Tensor, n: int) -> Tensor:
    return x[..., n:-n, n:-n]


def _apply_gate(x: Tensor, gate: Tensor | None) -> Tensor:
    # The gate in the map's type: a bf16 map times a float32 gate takes a slow mixed-type path
    # (5x the time of the product), and rounding the gate to bf16 measured no different.
    return x if gate is None else x.mul_(gate.to(x.dtype))


class SEBlock(nn.Module):
    """Squeeze-excitation: per-channel gates computed from a map's global mean."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // SE_REDUCTION, 1)
        self.conv2 = nn.Conv2d(channels // SE_REDUCTION, channels, 1)

    def gate(self, mean: Tensor) -> Tensor:
        """Gates (N x C x 1 x 1, float32) from channel means (N x C).

        Always float32, whatever the model's precision: the gate scales a whole map, so an
        error here is an error in every pixel (upcunet_v3.py also takes the mean in float32).
        """
        m = mean.float()[:, :, None, None]
        w1, b1 = self.conv1.weight.float(), self.conv1.bias.float()
        w2, b2 = self.conv2.weight.float(), self.conv2.bias.float()
        return torch.sigmoid(F.conv2d(F.relu(F.conv2d(m, w1, b1)), w2, b2))


class UNetConv(nn.Module):
    def __init__(self, c_in: int, c_mid: int, c_out: int, se: bool):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 3),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Conv2d(c_mid, c_out, 3),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )
        self.seblock = SEBlock(c_out) if se else None

    def forward(self, x: Tensor) -> Tensor:
        # Layer by layer rather than through the Sequential (kept for the checkpoints' key
        # names), so that each convolution runs in its own precision.
        first, _, second, _ = self.conv
        return _lrelu(_conv(second, _lrelu(_conv(first, x))))


class UNet1(nn.Module):
    def __init__(self, c_in: int, bottom: nn.Module, se: bool):
        super().__init__()
        self.conv1 = UNetConv(c_in, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2)
        self.conv2 = UNetConv(64, 128, 64, se=se)
        self.conv2_up = nn.ConvTranspose2d(64, 64, 2, 2)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.conv_bottom = bottom


class UNet2(nn.Module):
    def __init__(self, c_in: int, c_out: int, se: bool):
        super().__init__()
        self.conv1 = UNetConv(c_in, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2)
        self.conv2 = UNetConv(64, 64, 128, se=se)
        self.conv2_down = nn.Conv2d(128, 128, 2, 2)
        self.conv3 = UNetConv(128, 256, 128, se=se)
        self.conv3_up = nn.ConvTranspose2d(128, 128, 2, 2)
        self.conv4 = UNetConv(128, 64, 64, se=se)
        self.conv4_up = nn.ConvTranspose2d(64, 64, 2, 2)
        self.conv5 = nn.Conv2d(64, 64, 3)
        self.conv_bottom = nn.Conv2d(64, c_out, 3)


class UpCunet(nn.Module):
    """Real-CUGAN for `scale` 2, 3 or 4; `se=False` builds the no-SE ("nose") variant.

    `pro_io_transform` is for the original PyTorch Pro checkpoints, which work on
    x*0.7+0.15 and give (y-0.15)/0.7 (upcunet_v3.py, `pro` branch); the ncnn Pro weights
    have this folded in and must not get it twice.

    Works on float RGB in [0, 1], N x 3 x H x W. `forward` is the whole untiled model;
    `pad`, the `stages` and `finish` are its parts, for the tiled executor.
    """

    # A stage's output key holding the map that the next SE block gates.
    SE_INPUT = "se_input"
    # Skip tensors a tiled run may drop between stages; the last stage recomputes them.
    RECOMPUTABLE = ("unet2_skip1",)

    def __init__(self, scale: int, se: bool = True, pro_io_transform: bool = False):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"Real-CUGAN has 2x, 3x and 4x models, not {scale}x")
        self.geometry = geometry_for(scale)
        self.has_se = se
        self.pro_io_transform = pro_io_transform
        # unet1's bottom layer sets the scale: a stride-2 deconvolution for 2x and 4x, a
        # stride-3 one for 3x. 4x keeps 64 channels up to a final conv + pixel shuffle.
        between = 64 if scale == 4 else 3
        if scale == 3:
            bottom = nn.ConvTranspose2d(64, between, 5, 3, 2)
        else:
            bottom = nn.ConvTranspose2d(64, between, 4, 2, 3)
        self.unet1 = UNet1(3, bottom, se)
        self.unet2 = UNet2(between, between, se)
        self.conv_final = nn.Conv2d(64, 12, 3) if scale == 4 else None

    @property
    def scale(self) -> int:
        return self.geometry.scale

    @property
    def se_blocks(self) -> list[SEBlock]:
        """The SE blocks in the order the body reaches them (empty for the nose model)."""
        if not self.has_se:
            return []
        u1, u2 = self.unet1, self.unet2
        return [u1.conv2.seblock, u2.conv2.seblock, u2.conv3.seblock, u2.conv4.seblock]

    @property
    def stages(self) -> list[Callable[[State, Tensor | None], State]]:
        """The body as five functions (state, gate) -> state, split at the SE points."""
        return [self._unet1_head, self._unet1_tail, self._unet2_down, self._unet2_up, self._tail]

    # Layers kept in float32 at any precision. The two 3 -> 32 input layers read a picture
    # (unet2's is unet1's output): bf16 cannot even hold every 8-bit level (200/255 is not a
    # bf16 number), and they are under 1% of the work. The output layers make the image
    # itself, where bf16's 8-bit mantissa alone would cost a level at full white; for 2x/3x
    # they are 64 -> 3 channels, about 2% of the work (4x: about 6%). On 2x-no-denoise with
    # fine photographic texture, bf16 in unet1's input layer alone (the rest float32) gives
    # 45 dB against float32, bf16 everywhere but these layers 54 dB (benchmarks/precision.py
    # has the per-model figures of the engine's bf16).
    FLOAT32_LAYERS = (
        "unet1.conv1.conv.0",
        "unet2.conv1.conv.0",
        "unet1.conv_bottom",
        "unet2.conv_bottom",
        "conv_final",
    )

    def set_precision(self, dtype: torch.dtype) -> UpCunet:
        """Convert the body's convolutions to `dtype`, all but FLOAT32_LAYERS and the SE blocks.

        Layer by layer, never the whole module and back: a float32 layer that went through
        bf16 on the way would keep bf16's rounding of its weights. Call it on a float32 model.
        """
        for name, layer in self.named_modules():
            if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and not self._keeps_float32(name):
                layer.to(dtype)
        return self

    def _keeps_float32(self, name: str) -> bool:
        # SE blocks compute their gates in float32 (SEBlock.gate) and are a few kB.
        return name in self.FLOAT32_LAYERS or ".seblock." in name

    # -- the body -------------------------------------------------------------------------

    def _unet1_head(self, s: State, gate: Tensor | None) -> State:
        u = self.unet1
        x1 = u.conv1(s["x"])
        return {"unet1_skip": x1, self.SE_INPUT: u.conv2(_lrelu(_conv(u.conv1_down, x1)))}

    def _unet1_tail(self, s: State, gate: Tensor | None) -> State:
        u, v = self.unet1, self.unet2
        y = _lrelu(_conv(u.conv2_up, _apply_gate(s[self.SE_INPUT], gate)))
        y = _lrelu(_conv(u.conv3, y.add_(_crop(s["unet1_skip"], 4))))
        u1 = _conv(u.conv_bottom, y)
        x1 = v.conv1(u1)
        return {"unet1_out": u1, "unet2_skip1": x1, self.SE_INPUT: v.conv2(_lrelu(_conv(v.conv1_down, x1)))}

    def _unet2_down(self, s: State, gate: Tensor | None) -> State:
        v = self.unet2
        x2 = _apply_gate(s[self.SE_INPUT], gate)
        x3 = v.conv3(_lrelu(_conv(v.conv2_down, x2)))
        return {**_keep(s, "unet1_out", "unet2_skip1"), "unet2_skip2": x2, self.SE_INPUT: x3}

    def _unet2_up(self, s: State, gate: Tensor | None) -> State:
        v = self.unet2
        y = _lrelu(_conv(v.conv3_up, _apply_gate(s[self.SE_INPUT], gate)))
        x4 = v.conv4(y.add_(_crop(s["unet2_skip2"], 4)))
        return {**_keep(s, "unet1_out", "unet2_skip1"), self.SE_INPUT: x4}

    def _tail(self, s: State, gate: Tensor | None) -> State:
        v = self.unet2
        y = _lrelu(_conv(v.conv4_up, _apply_gate(s[self.SE_INPUT], gate)))
        u1 = s["unet1_out"]
        x1 = s["unet2_skip1"] if "unet2_skip1" in s else v.conv1(u1)
        y = _lrelu(_conv(v.conv5, y.add_(_crop(x1, 16))))
        z = _conv(v.conv_bottom, y).add_(_crop(u1, 20))
        if self.conv_final is not None:
            z = F.pixel_shuffle(_crop(_conv(self.conv_final, z), 1), 2)
        return {"out": z}

    # -- pre- and post-processing ------------------------------------------------------------

    def pad(self, x: Tensor) -> Tensor:
        """Reflect-pad a N x 3 x H x W frame for the body."""
        if self.pro_io_transform:
            x = x * PRO_IN_SCALE + PRO_OFFSET
        return F.pad(x, self.geometry.padding(x.shape[-2], x.shape[-1]), mode="reflect")

    def finish(self, body_out: Tensor, x: Tensor) -> Tensor:
        """Cut the body's output to scale x the frame size and add the 4x model's residual.

        The residual (nearest-neighbour 4x of the input, upcunet_v3.py UpCunet4x.forward) is
        not in the ncnn graph; the ncnn runner adds it in its post-processing.

        Works in place on `body_out` (float32): these are full output frames, and at 4x each
        copy of one is 192 bytes a source pixel, as much as a tenth of the states that tiles keep.
        """
        h, w = x.shape[-2:]
        s = self.scale
        y = body_out[..., : s * h, : s * w].float()
        if self.pro_io_transform:
            y.sub_(PRO_OFFSET).div_(PRO_IN_SCALE)
        if s == 4:
            # The nearest 4x of x, added without making it: each input pixel to its 4 x 4 block.
            blocks = y.unflatten(-1, (w, 4)).unflatten(-3, (h, 4))
            blocks.add_(x.float()[:, :, :, None, :, None])
        return y

    def forward(self, x: Tensor) -> Tensor:
        state: State = {"x": self.pad(x)}
        gate = None
        blocks = self.se_blocks
        for index, stage in enumerate(self.stages):
            state = stage(state, gate)
            if index < len(blocks):
                gate = blocks[index].gate(state[self.SE_INPUT].float().mean(dim=(2, 3)))
        return self.finish(state["out"], x)


def _keep(s: State, *names: str) -> State:
    return {k: s[k] for k in names if k in s}

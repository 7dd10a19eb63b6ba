"""Where Real-CUGAN pads a frame and cuts its output, without torch: the ncnn reference runner
(engines/ncnn_engine/reference.py) reads it in a process that never imports PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class UpcunetPadding:
    """How a frame is padded before the body and where the output is cut from.

    Values from upcunet_v3.py, UpCunet{2,3,4}x.forward (tile_mode 0): reflect padding of
    `pad` on every side, the bottom/right edge first rounded up to a multiple of `align`.
    """

    scale: int
    pad: int
    align: int
    # Linear resolution of the four SE maps relative to the padded input: unet1 works at the
    # input's resolution, unet2 at unet1's output resolution (3x for 3x, else 2x), and each
    # down-sampling halves it.
    se_resolution: tuple[Fraction, ...]

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) reflect padding for a frame of this size."""
        extra_h = -height % self.align
        extra_w = -width % self.align
        return (self.pad, self.pad + extra_w, self.pad, self.pad + extra_h)


def geometry_for(scale: int) -> UpcunetPadding:
    unet1_scale = 3 if scale == 3 else 2
    half, quarter = Fraction(unet1_scale, 2), Fraction(unet1_scale, 4)
    se_res = (Fraction(1, 2), half, quarter, half)
    pad, align = {2: (18, 2), 3: (14, 4), 4: (19, 2)}[scale]
    return UpcunetPadding(scale=scale, pad=pad, align=align, se_resolution=se_res)

"""What the file around a state dict says and its tensors cannot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    name: str
    source: str  # the file(s), for messages and the descriptor
    variant: str = ""  # the package's variant, where the tensors cannot tell (ncnn Pro weights)
    denoise: str = ""  # Real-CUGAN's or waifu2x's denoise level, from the file name
    # The family the file's package says it is, where the tensors cannot tell: waifu2x's 2x cunet
    # has Real-CUGAN 2x's exact layout and differs only in its border. Empty: detect from the tensors.
    family: str = ""
    # Where the graph resizes the network's output (Real-ESRGAN's 2x and 3x ncnn files): the scale after it.
    out_scale: int | None = None

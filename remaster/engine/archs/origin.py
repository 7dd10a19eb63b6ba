"""What the file around a state dict says and its tensors cannot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    name: str
    source: str  # the file(s), for messages and the descriptor
    variant: str = ""  # the package's variant, where the tensors cannot tell (ncnn Pro weights)
    denoise: str = ""  # Real-CUGAN's denoise level, from the file name
    # Where the graph resizes the network's output (Real-ESRGAN's 2x and 3x ncnn files): the scale after it.
    out_scale: int | None = None

"""What the file around a state dict says and its tensors cannot; loading the tensors strictly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from remaster.core.errors import WeightsError


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


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str, what: str) -> None:
    """Every tensor in its place and none left over, or a one-line error naming the file: a
    state dict that detection took for `what` but that does not fit it after all."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()  # PyTorch's last line names the tensor
        raise WeightsError(f"{source}: not a {what} model ({first})") from None

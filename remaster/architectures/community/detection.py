"""Community models: any architecture spandrel detects, for the files remaster's own registry does not know.

spandrel (PyPI `spandrel`, MIT; the optional extra `remaster[models]`) reads a state dict's key
layout as this registry does and builds the network for some forty architectures (SPAN, ESRGAN
variants, SwinIR, HAT, DAT, ...). It is asked only after remaster's own architectures: a file they
recognise runs through remaster's module, with exact tiles. spandrel never reads the file here:
remaster hands it the tensors it read itself, without running pickled code (models/loader.py).

remaster does not know these networks' receptive fields, so their tiles overlap and are
cross-faded (`Blended`, engines/tiling/blended.py) instead of being exact.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from remaster.architectures.descriptor import Blended, Border, Family, LoadedModel, ModelDescriptor, PadMode
from remaster.architectures.origin import Origin
from remaster.core.errors import WeightsError
from remaster.core.precision import Precision

SPANDREL_VERSION = "0.4.2"  # pyproject's `models` extra pins it; the messages name it
INSTALL_HINT = "pip install 'remaster[models]'"
# Context around every tile and the cross-fade each side of a boundary, in input pixels. The
# window's outer MARGIN - FADE pixels are dropped; with a random-weight SPAN (a local network) the
# blended tiles come out close to untiled at tile 64 and 128 (tests/test_community_models.py,
# docs/guide.md), where plain cut tiles show seams.
MARGIN = 32
FADE = 16
# Values per input pixel alive at once, untiled, batch 1: not known for an architecture remaster
# does not have. A deliberately large guess, about HAT/SwinIR's (180 channels, a few copies of the
# map at once, attention windows), so that `--tile auto` tiles a big frame rather than running out
# of memory on it; a light network (SPAN, Compact) then merely runs in more tiles than it needs.
ACTIVATIONS_PER_PIXEL = 4000
# The purposes of spandrel's ImageModelDescriptor that take a picture and give the whole picture
# back, upscaled or restored: not "FaceSR" (GFPGAN and the like restore aligned face crops).
WHOLE_PICTURE_PURPOSES = ("SR", "Restoration")

_noted: set[str] = set()


def _import_spandrel(source: str, own_architectures: list[str]) -> Any:
    """spandrel, or a one-line error naming the file, remaster's architectures and the extra to install."""
    try:
        import spandrel
    except Exception as exc:  # ImportError, or a torchvision that does not match torch (RuntimeError)
        raise WeightsError(
            f"{source}: not a model of a supported architecture (remaster's own: {', '.join(own_architectures)}); "
            f"other architectures need spandrel {SPANDREL_VERSION}, which cannot be imported here "
            f"({type(exc).__name__}): {INSTALL_HINT}"
        ) from None
    return spandrel


def spandrel_architectures() -> list[str]:
    """The names of the architectures the installed spandrel detects (empty if it cannot be imported)."""
    try:
        import spandrel
    except Exception:  # not installed, or broken: then there are none
        return []
    return [support.architecture.name for support in spandrel.MAIN_REGISTRY]


class CommunityNet(nn.Module):
    """A spandrel model as the engine runs one: float32 N x C x H x W in, float32 s x larger out.

    spandrel's own call pads each input to the architecture's size requirements (multiple of,
    minimum, square: reflect, then replicate past what reflection can give) and crops the output
    back, so windows of any size work.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.net = model.model  # registered, so that `.to(device)` moves its weights
        self._spandrel = model
        self.dtype = torch.float32

    @property
    def scale(self) -> int:
        return int(self._spandrel.scale)

    def set_precision(self, dtype: torch.dtype) -> CommunityNet:
        """The whole network in `dtype` (spandrel has no per-layer precision, unlike remaster's own modules)."""
        self.net.to(dtype)
        self.dtype = dtype
        return self

    def forward(self, x: Tensor) -> Tensor:
        # A copy always: some of spandrel's networks scale their input in place (RCAN: `x *= rgb_range`),
        # and `x` is a window of the frame that overlapping tiles read again.
        return self._spandrel(x.to(self.dtype, copy=True)).float()


def _precisions(model: Any) -> tuple[Precision, ...]:
    supported = [Precision.FP32]
    if model.supports_bfloat16:
        supported.append(Precision.BF16)
    if model.supports_half:
        supported.append(Precision.FP16)
    return tuple(supported)


def _window_align(model: Any) -> int:
    """Where tile windows start: multiples of the network's attention window (SwinIR, HAT, ATD, DRCT,
    OmniSR, GRL keep it as `window_size`) and of its size multiple, so that windows fall on the
    untiled run's grid; 1 for convolutional networks."""
    window = getattr(model.model, "window_size", 1)
    window = window if isinstance(window, int) and window > 0 else 1
    return math.lcm(window, model.size_requirements.multiple_of)


def load(state: Mapping[str, Tensor], origin: Origin, own_architectures: list[str]) -> LoadedModel:
    """Detect `state` with spandrel and describe its network; one-line errors name the file.

    `own_architectures`: remaster's registry, for the message when spandrel does not know it either.
    """
    spandrel = _import_spandrel(origin.source, own_architectures)
    try:
        model = spandrel.MAIN_REGISTRY.load(dict(state))
    except spandrel.UnsupportedModelError:
        theirs = ", ".join(spandrel_architectures())
        raise WeightsError(
            f"{origin.source}: not a model of a supported architecture (remaster's own: {', '.join(own_architectures)};"
            f" spandrel {SPANDREL_VERSION}'s: {theirs})"
        ) from None
    except Exception as exc:  # detected, but its tensors do not fit the architecture's builder
        detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{origin.source}: spandrel cannot build this model ({detail})") from None
    name = model.architecture.name
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose not in WHOLE_PICTURE_PURPOSES:
        purpose = getattr(model, "purpose", "unknown")
        raise WeightsError(f"{origin.source}: a {name} {purpose} model; remaster runs upscaling and restoration models")
    if model.input_channels != 3 or model.output_channels != 3:
        raise WeightsError(
            f"{origin.source}: a {name} model with {model.input_channels} input and {model.output_channels} "
            "output channels; remaster runs RGB (3 in, 3 out)"
        )
    module = CommunityNet(model)
    descriptor = ModelDescriptor(
        name=origin.name,
        family=Family.COMMUNITY,
        architecture=name,
        scale=module.scale,
        source=origin.source,
        tiling=Blended(MARGIN, FADE, _window_align(model)),
        # No border of remaster's: spandrel pads to the size requirements itself, at the bottom and right.
        border=Border(PadMode.REFLECT, 0),
        activations_per_pixel=ACTIVATIONS_PER_PIXEL,
        min_size=1,  # spandrel's padding falls back to replicate where reflection has too few pixels
        variant=name,
        channels=3,
        precisions=_precisions(model),
    )
    return LoadedModel(module, descriptor)


def note_blended(descriptor: ModelDescriptor) -> None:
    """Say once per file and process, on stderr, that this model's tiles are blended, not exact."""
    if descriptor.source in _noted:
        return
    _noted.add(descriptor.source)
    print(
        f"note: {descriptor.source}: {descriptor.architecture} runs through spandrel {SPANDREL_VERSION}; remaster "
        f"cannot tile it exactly, so tiles overlap by {MARGIN} px and are cross-faded over {2 * FADE} px "
        "(--tile 0: untiled)",
        file=sys.stderr,
    )

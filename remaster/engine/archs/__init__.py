"""The architecture registry: one module per architecture, each detecting its own state dicts.

As in spandrel, what a file holds is read off its tensors (key names and shapes), never off the
file's name: `detect` asks each registered architecture in turn. The name and labels a state
dict cannot carry (the model's name, a denoise level, the output scale of a resized graph) come
in an `Origin` from whoever read the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from remaster.engine.archs import compact, realcugan, rrdb
from remaster.engine.archs.origin import Origin
from remaster.errors import WeightsError
from remaster.models.descriptor import Family, LoadedModel

StateDict = Mapping[str, Tensor]


@dataclass(frozen=True)
class Architecture:
    name: str
    family: Family
    detect: Callable[[StateDict], bool]
    load: Callable[[StateDict, Origin], LoadedModel]  # raises WeightsError for a malformed state


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(realcugan.NAME, Family.REALCUGAN, realcugan.detect, realcugan.load),
    Architecture(compact.NAME, Family.REALESRGAN, compact.detect, compact.load),
    Architecture(rrdb.NAME, Family.REALESRGAN, rrdb.detect, rrdb.load),
)


def detect(state: StateDict, source: str) -> Architecture:
    """The registered architecture whose key layout `state` has."""
    for architecture in ARCHITECTURES:
        if architecture.detect(state):
            return architecture
    names = ", ".join(a.name for a in ARCHITECTURES)
    raise WeightsError(f"{source}: not a model of a supported architecture ({names})")


def load_state(state: StateDict, origin: Origin) -> LoadedModel:
    """Detect the architecture of `state`, build its module in eval mode and describe it."""
    loaded = detect(state, origin.source).load(state, origin)
    loaded.module.eval().requires_grad_(False)
    return loaded

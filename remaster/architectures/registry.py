"""The architecture registry: one folder per architecture, each detecting its own state dicts.

As in spandrel, what a file holds is read off its tensors (key names and shapes), never off the
file's name: `detect` asks each registered architecture in turn. The name and labels a state
dict cannot carry (the model's name, a denoise level, the output scale of a resized graph, the
family where two families share a layout) come in an `Origin` from whoever read the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from remaster.architectures.community import detection as community
from remaster.architectures.compact import detection as compact
from remaster.architectures.descriptor import Family, LoadedModel
from remaster.architectures.origin import Origin
from remaster.architectures.realcugan import detection as realcugan
from remaster.architectures.rrdbnet import detection as rrdb
from remaster.architectures.waifu2x_cunet import detection as cunet
from remaster.architectures.waifu2x_upconv7 import detection as upconv7
from remaster.core.errors import WeightsError

StateDict = Mapping[str, Tensor]


@dataclass(frozen=True)
class Architecture:
    name: str
    family: Family
    detect: Callable[[StateDict], bool]
    load: Callable[[StateDict, Origin], LoadedModel]  # raises WeightsError for a malformed state
    # Where the origin names this architecture's family: a wider test, for layouts that another
    # family shares (waifu2x's 2x cunet is Real-CUGAN 2x's layout). None: `detect` as it is.
    detect_in_family: Callable[[StateDict], bool] | None = None


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(realcugan.NAME, Family.REALCUGAN, realcugan.detect, realcugan.load),
    Architecture(compact.NAME, Family.REALESRGAN, compact.detect, compact.load),
    Architecture(rrdb.NAME, Family.REALESRGAN, rrdb.detect, rrdb.load),
    Architecture(cunet.CUNET, Family.WAIFU2X, cunet.detect_cunet, cunet.load_cunet, cunet.detect_cunet_hinted),
    Architecture(upconv7.UPCONV7, Family.WAIFU2X, upconv7.detect_upconv7, upconv7.load_upconv7),
)


def find(state: StateDict, family: str = "") -> Architecture | None:
    """The registered architecture whose key layout `state` has (among `family`'s, if named), or None."""
    for architecture in ARCHITECTURES:
        if family and architecture.family != family:
            continue
        test = (architecture.detect_in_family if family else None) or architecture.detect
        if test(state):
            return architecture
    return None


def detect(state: StateDict, source: str, family: str = "") -> Architecture:
    """The registered architecture whose key layout `state` has (among `family`'s, if named)."""
    architecture = find(state, family)
    if architecture is None:
        names = ", ".join(a.name for a in ARCHITECTURES if not family or a.family == family)
        raise WeightsError(f"{source}: not a model of a supported architecture ({names})")
    return architecture


def own_architecture_names() -> list[str]:
    """remaster's own architectures, each once (waifu2x's cunet shares Real-CUGAN's layout but not its name)."""
    return list(dict.fromkeys(a.name for a in ARCHITECTURES))


def load_any(state: StateDict, origin: Origin) -> LoadedModel:
    """A state dict of remaster's own architectures (exact tiles), else of any that spandrel detects.

    Own first: a file both know (Real-CUGAN, Compact, ESRGAN) runs through remaster's module.
    """
    if find(state) is not None:
        return load_state(state, origin)
    loaded = community.load(state, origin, own_architecture_names())
    loaded.module.eval().requires_grad_(False)
    return loaded


def load_state(state: StateDict, origin: Origin) -> LoadedModel:
    """Detect the architecture of `state`, build its module in eval mode and describe it."""
    loaded = detect(state, origin.source, origin.family).load(state, origin)
    loaded.module.eval().requires_grad_(False)
    return loaded

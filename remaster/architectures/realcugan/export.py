"""UpCunet's exportable parts: the whole body in one graph, or each SE stage as a graph of its own.

The engines that run exported graphs (engines/openvino_engine) keep `UpCunet.pad` and `finish` (the
crop, the Pro output transform, the 4x residual) in torch, on the host, where they cost one pass
over the frame, and hand the graph the padded frame, as the ncnn engine hands ncnn its graph. The
body, untiled, is `UpCunet.forward` without those two: the stages with each SE gate computed in
the graph from the map's mean. Tiled, each stage is a graph whose inputs are the tile's state and
the whole frame's gate, computed between stages by `run_body_tiled`, as for the torch engine.
"""

from __future__ import annotations

from torch import Tensor, nn

from remaster.architectures.realcugan.network import State, UpCunet

# A stage graph's inputs are the tile's state and the gate, named with this prefix; its outputs are
# the next state, named by UpCunet's state keys. Both sides need names of their own: a map that is
# read and written under one key (`se_input`) would give the graph two ports of one name, which the
# exporter renames (`se_input_1`).
INPUT_PREFIX = "in_"
GATE = "gate"


def stage_input_names(state_keys: tuple[str, ...], gated: bool) -> list[str]:
    """The graph input names of a stage that reads `state_keys` (and the gate where `gated`), in order."""
    return [INPUT_PREFIX + key for key in state_keys] + ([INPUT_PREFIX + GATE] if gated else [])


class UpcunetBody(nn.Module):
    """The padded frame -> the body's output (before `UpCunet.finish`), SE gates inside."""

    def __init__(self, model: UpCunet):
        super().__init__()
        self.model = model

    def forward(self, padded: Tensor) -> Tensor:
        model = self.model
        state: State = {"x": padded}
        gate = None
        blocks = model.se_blocks
        for index, stage in enumerate(model.stages):
            state = stage(state, gate)
            if index < len(blocks):
                gate = blocks[index].gate(state[model.SE_INPUT].float().mean(dim=(2, 3)))
        return state["out"]


class UpcunetStage(nn.Module):
    """Stage `index` of the body as a function of positional tensors: the state named `names`, then
    the gate where `gated`; it returns the stage's state as a tuple in `outputs`' order."""

    def __init__(self, model: UpCunet, index: int, names: tuple[str, ...], gated: bool, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.index = index
        self.names = names
        self.gated = gated
        self.outputs = outputs

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        state = dict(zip(self.names, tensors[: len(self.names)], strict=True))
        gate = tensors[-1] if self.gated else None
        out = self.model.stages[self.index](state, gate)
        return tuple(out[name] for name in self.outputs)

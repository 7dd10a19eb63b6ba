"""A whole frame as one graph: the network with the padding before it and the cut after it.

Exported as the part "frame", it takes N x 3 x H x W float R'G'B' in [0, 1] and gives the scale x
upscale, float and not yet rounded: what `Upscaler.upscale_rgb` returns for an untiled frame. A
runtime that runs it needs nothing around the graph but the conversion from and to 8- or 16-bit
pictures (engines/host_frames.py), so that a packaged model's frame size that has run once runs
again without PyTorch (engines/openvino_engine/prepared.py). Tiles keep their own graphs (the SE
stages, a local network's window), with the padding and the cut in torch around them.
"""

from __future__ import annotations

from torch import Tensor, nn

from remaster.architectures.descriptor import ModelDescriptor, ReceptiveField, SeStages
from remaster.engines.tiling.local import upscale_local


def has_frame_graph(descriptor: ModelDescriptor) -> bool:
    """Whether whole frames of this model run as one frame graph: remaster's own architectures
    (a community model keeps its body graph under the cross-fading tiler)."""
    return isinstance(descriptor.tiling, SeStages | ReceptiveField)


class WholeFrame(nn.Module):
    """`network` on whole frames as the torch engine runs it untiled: Real-CUGAN and waifu2x cunet
    through their own `forward` (reflect padding, the body with its SE gates, the crop and the 4x
    residual), a local network through `upscale_local` with the frame as its one tile."""

    def __init__(self, network: nn.Module, descriptor: ModelDescriptor):
        super().__init__()
        if not has_frame_graph(descriptor):
            raise ValueError(f"{descriptor.name}: a community model has no frame graph")
        self.network = network
        self.descriptor = descriptor

    def forward(self, x: Tensor) -> Tensor:
        d = self.descriptor
        if isinstance(d.tiling, SeStages):
            return self.network(x)
        return upscale_local(self.network, x, d.border, d.tiling, d.scale, 0)[0]

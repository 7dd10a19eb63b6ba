import shutil

import pytest
import torch

from remaster.models.catalog import packaged_models
from remaster.models.ncnn import NcnnFormatError, read_ncnn


@pytest.fixture
def model_files(tmp_path):
    packaged = packaged_models()["2x-conservative"]
    param, bin_path = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(packaged.param, param)
    shutil.copy(packaged.bin, bin_path)
    return param, bin_path


def test_reads_every_weighted_layer_in_order(model_files):
    layers = read_ncnn(*model_files)
    kinds = [layer.kind for layer in layers]
    assert kinds.count("InnerProduct") == 8  # two per SE block, four SE blocks
    first = layers[0]
    assert first.kind == "Convolution" and first.weight.shape == (32, 3, 3, 3)
    assert first.weight.dtype == torch.float32 and first.bias.shape == (32,)
    # Deconvolutions come out in ConvTranspose2d's [in][out][k][k] layout.
    bottom = next(layer for layer in layers if layer.kind == "Deconvolution" and layer.weight.shape[1] == 3)
    assert bottom.weight.shape == (64, 3, 4, 4)


def test_truncated_bin_is_reported(model_files):
    param, bin_path = model_files
    bin_path.write_bytes(bin_path.read_bytes()[:100_000])
    with pytest.raises(NcnnFormatError, match="m.bin"):
        read_ncnn(param, bin_path)


def test_trailing_bytes_are_reported(model_files):
    param, bin_path = model_files
    bin_path.write_bytes(bin_path.read_bytes() + b"\0" * 8)
    with pytest.raises(NcnnFormatError, match="8 bytes left"):
        read_ncnn(param, bin_path)


def test_not_a_param_file(model_files):
    param, bin_path = model_files
    param.write_text("hello\n")
    with pytest.raises(NcnnFormatError, match="not an ncnn .param"):
        read_ncnn(param, bin_path)

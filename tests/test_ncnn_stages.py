"""Exact tiles on ncnn: the stage sub-graphs of remaster.engines.ncnn_engine.stages, on ncnn's CPU path and Vulkan.

Vulkan here is Mesa's llvmpipe (software), so the frames are tiny. Outputs are the body's, before
`model.finish`, compared as floats on [0, 1] (PSNR with peak 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster.core.errors import UsageError
from remaster.engines.tiling.tiles import plan_tiles, run_body_tiled
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model
from tests.conftest import picture

ncnn = pytest.importorskip("ncnn", reason="ncnn wheel not installed")

from remaster.engines.ncnn_engine.net import NcnnOptions, new_net  # noqa: E402  (needs the ncnn wheel)
from remaster.engines.ncnn_engine.stages import (  # noqa: E402
    NcnnStages,
    cut_at_means,
    load_net,
    run_staged_tiled,
    tile_multiple,
)

CPU = NcnnOptions(threads=2)  # the test machine's cores
SE_MODELS = [
    "2x-no-denoise",
    "3x-no-denoise",
    "4x-no-denoise",
    "2x-waifu2x-cunet-no-denoise",
    "1x-waifu2x-cunet-denoise0x",
]
# Tile sides (core pixels) for the 37 x 45 frame: 9 and 4 tiles.
TILES = [16, 24]


def psnr_float(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def padded_frame(name: str, height: int = 37, width: int = 45):
    """The torch model and a picture padded as the torch engine pads it (model.pad), as C x H x W."""
    model = load_model(name).module
    rgb = torch.from_numpy(picture("anime", height, width)).permute(2, 0, 1)[None].float() / 255
    return model, model.pad(rgb)[0].numpy()


def core_of(padded: np.ndarray, pad: int) -> tuple[int, int]:
    return padded.shape[1] - 2 * pad, padded.shape[2] - 2 * pad


def original_net(name: str, options: NcnnOptions):
    packaged = packaged_models()[name]
    net = new_net(options)
    load_net(net, packaged.param.read_text(), packaged.bin.read_bytes(), str(packaged.param))
    return net


def run_original(net, stages: NcnnStages, window: np.ndarray) -> np.ndarray:
    """The whole, uncut graph on one window: what ncnn runners do per tile (per-tile SE means)."""
    array = np.ascontiguousarray(window)
    extractor = net.create_extractor()
    extractor.input(stages.input, ncnn.Mat(array).clone())
    status, out = extractor.extract(stages.output)
    assert status == 0
    return np.array(out)


def test_cut_covers_the_graph():
    packaged = packaged_models()["2x-no-denoise"]
    cut = cut_at_means(packaged.param, packaged.bin)
    assert len(cut.stages) == 5  # four SE blocks
    # Every weighted layer goes to exactly one stage: the stages' .bin bytes add up to the file.
    assert sum(len(stage.weights) for stage in cut.stages) == packaged.bin.stat().st_size
    first, last = cut.stages[0], cut.stages[-1]
    assert first.inputs == (cut.input,) and last.outputs == (cut.output,)
    # The last stage reads unet2's skip and unet1's output from the first two stages, and the mean.
    assert len(last.inputs) == 4 and cut.stages[-2].se_mean in last.inputs
    assert all(stage.se_input in stage.outputs for stage in cut.stages[:-1])


def test_graph_without_means_is_one_stage():
    packaged = packaged_models()["2x-esrgan-animevideo"]
    cut = cut_at_means(packaged.param, packaged.bin)
    assert len(cut.stages) == 1 and cut.stages[0].se_input is None
    assert len(cut.stages[0].weights) == packaged.bin.stat().st_size


def test_tile_multiple_aligns_winograd_blocks_in_fp16():
    fp16 = NcnnOptions(fp16=True)
    assert tile_multiple(load_model("2x-no-denoise").module.geometry, NcnnOptions()) == 4  # the torch engine's
    assert tile_multiple(load_model("2x-no-denoise").module.geometry, fp16) == 4
    # 3x: unet2's quarter resolution is 3/4 of the input's; 8 x 3/4 = 6, an even start.
    assert tile_multiple(load_model("3x-no-denoise").module.geometry, fp16) == 8


@pytest.mark.slow
@pytest.mark.parametrize("name", SE_MODELS)
def test_staged_whole_frame_equals_the_original_graph(name):
    model, padded = padded_frame(name)
    stages = NcnnStages(packaged_models()[name].param, packaged_models()[name].bin, CPU)
    staged = run_staged_tiled(stages, padded, plan_tiles(*core_of(padded, model.geometry.pad), 0, 4), model.geometry)
    reference = run_original(original_net(name, CPU), stages, padded)
    # Only the means differ: float64 sums here, ncnn's float32 Pooling there (131-135 dB measured).
    assert psnr_float(staged, reference) >= 100


@pytest.mark.slow
@pytest.mark.parametrize("name", ["2x-no-denoise", "3x-no-denoise", "2x-waifu2x-cunet-no-denoise"])
def test_tiled_equals_untiled_and_the_torch_engine_on_cpu(name):
    model, padded = padded_frame(name)
    g = model.geometry
    stages = NcnnStages(packaged_models()[name].param, packaged_models()[name].bin, CPU)
    whole = run_staged_tiled(stages, padded, plan_tiles(*core_of(padded, g.pad), 0, 4), g)
    for tile in TILES:
        tiles = plan_tiles(*core_of(padded, g.pad), tile, tile_multiple(g, CPU))
        tiled = run_staged_tiled(stages, padded, tiles, g)
        with torch.inference_mode():
            torch_tiled = run_body_tiled(model, torch.from_numpy(padded)[None], tiles)[0].numpy()
        # Measured 126-134 dB against untiled, 127-133 dB against the torch engine fp32.
        assert psnr_float(tiled, whole) >= 80, tile
        assert psnr_float(tiled, torch_tiled) >= 60, tile


@pytest.mark.slow
def test_per_tile_means_leave_seams():
    """What ncnn runners do, the whole graph on each tile: every tile gates with its own means."""
    name = "2x-no-denoise"
    model, padded = padded_frame(name)
    g = model.geometry
    stages = NcnnStages(packaged_models()[name].param, packaged_models()[name].bin, CPU)
    whole = run_staged_tiled(stages, padded, plan_tiles(*core_of(padded, g.pad), 0, 4), g)
    net = original_net(name, CPU)
    per_tile = np.empty_like(whole)
    s = g.scale
    for tile in plan_tiles(*core_of(padded, g.pad), TILES[0], 4):
        r, c = tile.rows, tile.cols
        window = padded[:, r.start : r.start + r.length + 2 * g.pad, c.start : c.start + c.length + 2 * g.pad]
        per_tile[:, s * r.start : s * (r.start + r.length), s * c.start : s * (c.start + c.length)] = run_original(
            net, stages, window
        )
    # Measured 33-39 dB on these frames (2x, 3x, 4x, waifu2x cunet; 9 to 4 tiles); exact tiles >= 126 dB.
    assert psnr_float(per_tile, whole) < 45


needs_vulkan = pytest.mark.skipif(ncnn.get_gpu_count() == 0, reason="no Vulkan device (install Mesa's llvmpipe)")


def test_vulkan_device_past_the_last_is_refused():
    # ncnn itself would take the index without a word; this must say so instead.
    with pytest.raises(UsageError, match="Vulkan device 7"):
        new_net(NcnnOptions(vulkan=True, device=7))


@pytest.mark.slow
@needs_vulkan
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_vulkan_tiled_equals_untiled(fp16):
    name = "2x-no-denoise"
    options = NcnnOptions(vulkan=True, fp16=fp16)
    model, padded = padded_frame(name, 32, 40)
    g = model.geometry
    stages = NcnnStages(packaged_models()[name].param, packaged_models()[name].bin, options)
    whole = run_staged_tiled(stages, padded, plan_tiles(*core_of(padded, g.pad), 0, 4), g)
    with torch.inference_mode():
        torch_whole = run_body_tiled(model, torch.from_numpy(padded)[None], plan_tiles(*core_of(padded, g.pad), 0, 4))
    # Against torch fp32, measured on llvmpipe: 134 dB in fp32, 56 dB in fp16 (the bars: 60 and 50).
    assert psnr_float(whole, torch_whole[0].numpy()) >= (50 if fp16 else 60)
    tiled = run_staged_tiled(stages, padded, plan_tiles(*core_of(padded, g.pad), 16, tile_multiple(g, options)), g)
    # Measured: fp32 136-138 dB; fp16 bit-identical (Winograd F(4,3) off, see ncnn_stages.new_net).
    assert psnr_float(tiled, whole) >= 80

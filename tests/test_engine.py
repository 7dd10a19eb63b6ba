import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import allow_bf16_on_any_cpu, max_diff, psnr

from remaster.bench.measure import psnr as bench_psnr
from remaster.core.errors import UsageError
from remaster.engines.device import cpu_bf16_pays, cpu_has_bf16, resolve_precision
from remaster.engines.settings import EngineSettings, parse_tile
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame, photo_frame
from remaster.models.catalog import packaged_models
from remaster.models.fidelity import BF16_WORST_PSNR_DB, auto_bf16
from remaster.models.loader import load_model


@pytest.fixture(scope="module")
def upscaler():
    return TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "64"))


def clip(n=4, h=70, w=90):
    return np.stack([anime_frame(h, w, seed=i) for i in range(n)])


def test_batch_of_four_equals_four_batches_of_one(upscaler):
    frames = clip()
    together = upscaler.upscale(frames)
    apart = np.concatenate([upscaler.upscale(frames[i : i + 1]) for i in range(4)])
    assert together.shape == (4, 140, 180, 3)
    assert np.array_equal(together, apart)


def test_torch_in_torch_out(upscaler):
    frames = clip(2)
    out = upscaler.upscale(torch.from_numpy(frames))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    assert np.array_equal(out.numpy(), upscaler.upscale(frames))


def test_16_bit_in_16_bit_out(upscaler):
    frames8 = clip(1)
    out8 = upscaler.upscale(frames8)
    out16 = upscaler.upscale(frames8.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16
    # Same picture, so the same result to within the 8-bit rounding; and the 16-bit result
    # really uses the finer levels.
    assert max_diff(out16 / 257.0, out8) <= 1
    assert len(np.unique(out16)) > 4 * len(np.unique(out8))


def test_alpha_is_kept_and_upscaled():
    up = TorchUpscaler(load_model("2x-conservative"), EngineSettings("cpu", "fp32", "0"))
    rgba = np.zeros((1, 40, 48, 4), np.uint8)
    rgba[..., :3] = anime_frame(40, 48)
    rgba[0, :, 24:, 3] = 255  # right half opaque, left half transparent
    out = up.upscale(rgba)[0]
    assert out.shape == (80, 96, 4)
    # Away from the edge (the model sharpens edges, with some overshoot near them).
    assert out[:, :32, 3].max() <= 2 and out[:, 64:, 3].min() >= 253
    assert np.array_equal(out[..., :3], up.upscale(rgba[..., :3].copy())[0])


def test_too_small_frame_is_refused(upscaler):
    with pytest.raises(UsageError, match="too small"):
        upscaler.upscale(np.zeros((1, 10, 40, 3), np.uint8))


@pytest.mark.parametrize("value", ["12", "63", "66", "-4", "big"])
def test_bad_tile_values(value):
    with pytest.raises(UsageError, match="--tile"):
        parse_tile(value)


def test_tile_values():
    assert parse_tile("auto") is None and parse_tile("0") == 0 and parse_tile("64") == 64


X86_LINUX = platform.machine() == "x86_64" and Path("/proc/cpuinfo").exists()


@pytest.mark.skipif(not X86_LINUX, reason="reads x86 CPU flags from /proc/cpuinfo")
def test_auto_precision_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == torch.float32
    expected = torch.bfloat16 if _cpuinfo_bf16_pays() else torch.float32
    assert resolve_precision("auto", cpu, auto_cpu_bf16=True) == expected


def _cpuinfo_has_native_bf16() -> bool:
    """The kernel's own list of CPU flags: bf16 arithmetic in hardware means avx512_bf16 or amx_bf16.
    (Plain AVX-512 is not enough: oneDNN then emulates bf16, slower than fp32.)"""
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split(":", 1)[1].split()))


def _cpuinfo_bf16_pays() -> bool:
    """`auto`'s bf16, from the kernel's list: AMX, or AVX-512 BF16 on a CPU that is not Intel's."""
    info = Path("/proc/cpuinfo").read_text().splitlines()
    flags = set(next(line for line in info if line.startswith("flags")).split(":", 1)[1].split())
    intel = "GenuineIntel" in next((line for line in info if line.startswith("vendor_id")), "")
    return "amx_bf16" in flags or ("avx512_bf16" in flags and not intel)


@pytest.mark.skipif(not X86_LINUX, reason="reads x86 CPU flags from /proc/cpuinfo")
def test_cpu_bf16_means_native_bf16():
    assert cpu_has_bf16() == _cpuinfo_has_native_bf16()


def test_bench_psnr_agrees_with_the_tests_own():
    # One level off everywhere: MSE 1, so 20 log10(255) = 48.13 dB; the same in 16 bits at 257 levels.
    a = anime_frame(30, 40, seed=3)
    off = np.where(a < 255, a + 1, a - 1).astype(np.uint8)
    assert psnr(a, off) == bench_psnr(a, off) == pytest.approx(48.1308, abs=1e-4)
    assert bench_psnr(a.astype(np.uint16) * 257, off.astype(np.uint16) * 257) == pytest.approx(48.1308, abs=1e-4)
    assert psnr(a, a) == bench_psnr(a, a) == float("inf")
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    assert bench_psnr(noisy, a) == pytest.approx(psnr(noisy, a), abs=1e-9)


# The packaged models `auto` runs in bf16 on a bf16 CPU, as docs/guide.md ("Precision") and
# docs/engine.md's fidelity table list them; every other packaged model runs float32.
AUTO_BF16_MODELS = {
    "2x-conservative",
    "2x-no-denoise",
    "2x-denoise1x",
    "2x-denoise3x",
    "4x-conservative",
    "2x-nose-no-denoise",
    "2x-esrgan-animevideo",
    "3x-esrgan-animevideo",
    "4x-esrgan-animevideo",
}


def test_only_measured_packaged_models_take_bf16_under_auto():
    for name in packaged_models():
        assert auto_bf16(name) == (name in AUTO_BF16_MODELS), name
    # And the loader hands that decision to the engine.
    assert load_model("2x-conservative").descriptor.auto_cpu_bf16
    assert not load_model("2x-pro-conservative").descriptor.auto_cpu_bf16


# The layers that stay float32 in a bf16 model, as docs/engine.md ("Devices, precision, batches")
# states the rule: the two 3 -> 32 input layers, the layers that write the picture (both U-Nets'
# bottoms, the 4x final conv), and the SE blocks. Key names as in upcunet_v3.py's checkpoints.
FLOAT32_IN_BF16 = {
    "unet1.conv1.conv.0",
    "unet2.conv1.conv.0",
    "unet1.conv_bottom",
    "unet2.conv_bottom",
    "unet1.conv2.seblock.conv1",
    "unet1.conv2.seblock.conv2",
    "unet2.conv2.seblock.conv1",
    "unet2.conv2.seblock.conv2",
    "unet2.conv3.seblock.conv1",
    "unet2.conv3.seblock.conv2",
    "unet2.conv4.seblock.conv1",
    "unet2.conv4.seblock.conv2",
}


@pytest.mark.parametrize("name, layers", [("2x-conservative", 30), ("4x-conservative", 31)])
def test_bf16_keeps_the_input_and_output_layers_in_float32(name, layers):
    float32_layers = FLOAT32_IN_BF16 | ({"conv_final"} if name.startswith("4x") else set())
    reference = load_model(name).module
    model = load_model(name).module.set_precision(torch.bfloat16)
    dtypes = {
        layer_name: layer.weight.dtype
        for layer_name, layer in model.named_modules()
        if isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    }
    # Every weighted layer of the ncnn graph is counted, so no layer escapes the check.
    assert len(dtypes) == layers
    assert {n for n, dtype in dtypes.items() if dtype == torch.float32} == float32_layers
    assert {n for n, dtype in dtypes.items() if dtype == torch.bfloat16} == set(dtypes) - float32_layers
    # The float32 layers keep their float32 weights bit for bit, never a copy rounded through bf16.
    weights = dict(reference.named_parameters())
    for layer_name in float32_layers:
        for kind in ("weight", "bias"):
            kept = model.get_parameter(f"{layer_name}.{kind}")
            assert torch.equal(kept, weights[f"{layer_name}.{kind}"]), layer_name


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(BF16_WORST_PSNR_DB))
def test_auto_bf16_on_cpu_stays_above_50_db(model, monkeypatch):
    """What `auto` runs on a CPU with native bf16, measured on any CPU (allow_bf16_on_any_cpu)."""
    # Other pictures than the ones benchmarks/precision.py chose the models with.
    frames = [anime_frame(75, 101, seed=21), photo_frame(75, 101, seed=22)]
    auto = TorchUpscaler(load_model(model), EngineSettings("cpu", "auto", "0"))
    assert auto.precision == ("bf16" if cpu_bf16_pays() else "fp32")
    allow_bf16_on_any_cpu(monkeypatch)
    bf16 = TorchUpscaler(load_model(model), EngineSettings("cpu", "bf16", "0"))
    fp32 = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", "0"))
    assert bf16.precision == "bf16"
    for frame in frames:
        assert psnr(bf16.upscale(frame[None]), fp32.upscale(frame[None])) >= 50


# SE stages at three scales and the two local families, as `auto` runs them on CUDA.
FP16_MODELS = [
    "2x-conservative",
    "2x-pro-no-denoise",
    "3x-denoise3x",
    "4x-conservative",
    "3x-esrgan-animevideo",
    "4x-esrgan-anime6b",
]


@pytest.mark.slow
@pytest.mark.parametrize("model", FP16_MODELS)
def test_fp16_arithmetic_on_the_cpu_stays_above_50_db(model):
    """A CPU stand-in for CUDA's `auto` precision: the fp16 number format through PyTorch's CPU
    kernels, not CUDA's (cuDNN picks other algorithms and accumulates differently). The CUDA test
    below measures the real thing on a GPU."""
    frame = anime_frame(48, 56, seed=4)[None]
    fp32 = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    fp16 = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp16", "0")).upscale(frame)
    assert psnr(fp16, fp32) >= 50


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: measures fp16 as CUDA computes it")
@pytest.mark.parametrize("model", FP16_MODELS)
def test_fp16_the_cuda_default_stays_above_50_db(model):
    frame = anime_frame(48, 56, seed=4)[None]
    fp32 = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    cuda = TorchUpscaler(load_model(model), EngineSettings("cuda", "auto", "0"))
    assert cuda.device.type == "cuda" and cuda.precision == "fp16"  # `auto` on CUDA
    assert psnr(cuda.upscale(frame), fp32) >= 50

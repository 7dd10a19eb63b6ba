"""Measured bf16 fidelity of the packaged models, which decides CPU `auto` precision.

bf16 made a CPU frame about 1.8x faster on an AMD EPYC with AVX-512 BF16 (slower on an Intel Xeon
without AMX, where `--engine auto` measures both precisions and runs fp32),
but its 8-bit mantissa costs more on some models than on others: the Pro models, whose
weights carry the x*0.7+0.15 input map, lose the most, and fine photographic texture is the
worst content for every model. `auto` takes bf16 only for a model whose worst PSNR against
float32 was at least AUTO_BF16_MIN_DB over four kinds of picture (anime, photographic, heavy
grain, fine texture); the issue's bar is 50 dB, and the 2 dB above it are margin for content
the pictures do not cover.

The values are from benchmarks/precision.py (the engine's bf16, with its float32 input and
output layers: UpCunet.FLOAT32_LAYERS); tests/test_engine.py checks again, on other
pictures, that every model listed keeps 50 dB.
"""

from __future__ import annotations

AUTO_BF16_MIN_DB = 52.0

# Worst PSNR of bf16 against float32 over the four kinds of picture, in dB, for the models that
# pass; every other packaged model stays float32 under `auto`.
BF16_WORST_PSNR_DB: dict[str, float] = {
    "2x-conservative": 55.6,
    "2x-no-denoise": 52.1,
    "2x-denoise1x": 52.2,
    "2x-denoise3x": 53.8,
    "4x-conservative": 54.2,
    "2x-nose-no-denoise": 53.4,
    # Real-ESRGAN realesr-animevideov3 (its first and last convolutions stay float32).
    "2x-esrgan-animevideo": 57.0,
    "3x-esrgan-animevideo": 57.3,
    "4x-esrgan-animevideo": 57.6,
}
# Measured and left in float32 (worst dB): 2x-denoise2x 50.6, 3x-no-denoise 51.6,
# 3x-conservative 51.4, 3x-denoise3x 51.0, 4x-no-denoise 50.7, 4x-denoise3x 51.3, the
# six Pro models 40.4-48.7, and Real-ESRGAN's RRDBNet models 4x-esrgan-anime6b 49.3 and
# 4x-esrgan-plus 44.5 (both worst on fine texture).


def auto_bf16(model_name: str) -> bool:
    """Whether `auto` may run this packaged model in bf16 on a CPU that has it.

    By name: packaged names win over user checkpoints in `load_model`, so the name says
    which weights will run.
    """
    return BF16_WORST_PSNR_DB.get(model_name, 0.0) >= AUTO_BF16_MIN_DB

"""How far each packaged model's CPU bf16 run is from its float32 run, in PSNR.

    python benchmarks/precision.py [MODEL...] [--size 240x180]

Four pictures a model: an anime-like frame, a photographic one, an anime frame with heavy
grain (a noisy DVD), and fine photographic texture (photographic pictures made at 100x75,
where the finest octaves are one or two pixels wide; the worst of three, as this is where
models differ most). The engine's `auto` precision takes bf16 on a CPU only for the
models whose worst case here is at least `remaster.models.fidelity.AUTO_BF16_MIN_DB`; the
table printed is the one kept in `remaster/models/fidelity.py`. Needs a CPU with bf16
(AVX-512 BF16 or AMX).
"""

from __future__ import annotations

import argparse

import numpy as np

from remaster.bench.measure import psnr
from remaster.engines.device import cpu_has_bf16
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame, photo_frame
from remaster.models.catalog import packaged_models
from remaster.models.fidelity import AUTO_BF16_MIN_DB
from remaster.models.loader import load_model

PICTURES = ("anime", "photo", "grain", "fine")


def pictures(height: int, width: int) -> list[np.ndarray]:
    grain = anime_frame(height, width, seed=11).astype(np.float32)
    grain += np.random.default_rng(12).normal(0, 6, grain.shape)  # a noisy source
    grain = np.clip(grain, 0, 255).round().astype(np.uint8)
    fine = [photo_frame(75, 100, seed=seed) for seed in (13, 14, 15)]
    return [anime_frame(height, width, seed=7), photo_frame(height, width, seed=8), grain, *fine]


def bf16_psnr(model: str, frames: list[np.ndarray]) -> list[float]:
    fp32 = TorchUpscaler(load_model(model), EngineSettings("cpu", "fp32", "0"))
    bf16 = TorchUpscaler(load_model(model), EngineSettings("cpu", "bf16", "0"))
    values = [psnr(bf16.upscale(f[None]), fp32.upscale(f[None])) for f in frames]
    return values[: len(PICTURES) - 1] + [min(values[len(PICTURES) - 1 :])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--size", default="240x180")
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has neither AVX-512 BF16 nor AMX: nothing to measure")
    width, height = (int(v) for v in args.size.split("x"))
    frames = pictures(height, width)
    print(f"{'model':22s} " + " ".join(f"{p:>6s}" for p in PICTURES) + "  worst  auto")
    for model in args.models or packaged_models():
        values = bf16_psnr(model, frames)
        auto = "bf16" if min(values) >= AUTO_BF16_MIN_DB else "fp32"
        print(f"{model:22s} " + " ".join(f"{v:6.1f}" for v in values) + f" {min(values):6.1f}  {auto}", flush=True)


if __name__ == "__main__":
    main()

"""Each family's 2x against bicubic and lanczos: box-downscale a picture 2x, upscale it back, PSNR
against the original.

    python benchmarks/families_quality.py [--size 320x240] [--seeds 3]

The issue's table was measured on third-party cel art, which the project does not have; this
re-measures it with remaster's own output on pictures made in code (remaster.media.testcard):
`anime_frame` (flat fills, dark outlines, a gradient sky, slight noise) and `photo_frame`
(smooth shading with texture at every scale), `--seeds` of each. Models run fp32, untiled, on
the CPU; bicubic and lanczos are PIL's. The table gives the mean PSNR over the seeds, in dB.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from PIL import Image

from remaster.architectures.descriptor import family_title
from remaster.bench.measure import psnr
from remaster.core.presets import get_preset
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame, photo_frame
from remaster.models.loader import load_model

# Every family's 2x models without denoise (the downscaled pictures carry no noise to remove),
# and Real-CUGAN's default.
PRESETS = (
    "2x-waifu2x-art-no-denoise",
    "2x-waifu2x-photo-no-denoise",
    "2x-waifu2x-cunet-no-denoise",
    "2x-esrgan-animevideo",
    "2x-conservative",
    "2x-no-denoise",
)
PICTURES = {"anime": anime_frame, "photo": photo_frame}


def box_downscale(pixels: np.ndarray) -> np.ndarray:
    """Each 2x2 block's mean, rounded: what a box filter halving the size gives."""
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    blocks = pixels[:h, :w].astype(np.float64).reshape(h // 2, 2, w // 2, 2, 3)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="320x240", help="the originals' size (even sides)")
    parser.add_argument("--seeds", type=int, default=3, help="pictures of each kind")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    originals = {kind: [make(height, width, seed) for seed in range(args.seeds)] for kind, make in PICTURES.items()}
    small = {kind: [box_downscale(p) for p in pictures] for kind, pictures in originals.items()}

    def resample(kind: str, method: Image.Resampling) -> list[np.ndarray]:
        return [np.asarray(Image.fromarray(p).resize((width, height), method)) for p in small[kind]]

    rows = []
    for label, method in (("bicubic (PIL)", Image.Resampling.BICUBIC), ("lanczos (PIL)", Image.Resampling.LANCZOS)):
        rows.append((label, "-", {kind: resample(kind, method) for kind in PICTURES}))
    for name in PRESETS:
        model = load_model(get_preset(name).model)
        upscaler = TorchUpscaler(model, EngineSettings("cpu", "fp32", "0"))
        outputs = {kind: [upscaler.upscale(p[None])[0] for p in small[kind]] for kind in PICTURES}
        rows.append((name, family_title(model.descriptor.family), outputs))

    print(f"box-downscaled 2x from {width}x{height} and upscaled back; mean PSNR of {args.seeds} pictures, dB")
    print("| method | family | anime_frame | photo_frame |")
    print("|---|---|---|---|")
    for label, family, outputs in sorted(rows, key=lambda row: -mean_psnr(row[2]["anime"], originals["anime"])):
        cells = [f"{mean_psnr(outputs[kind], originals[kind]):.1f}" for kind in PICTURES]
        print(f"| {label} | {family} | {' | '.join(cells)} |")


def mean_psnr(outputs: list[np.ndarray], originals: list[np.ndarray]) -> float:
    return statistics.mean(psnr(out, original) for out, original in zip(outputs, originals, strict=True))


if __name__ == "__main__":
    main()

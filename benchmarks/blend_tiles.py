"""Blended tiles against untiled, for community architectures that remaster cannot tile exactly.

Needs spandrel (`remaster[models]`; scripts/run-tests.sh builds a `.venv-models` that has it).
Three small random-weight networks built with spandrel's own classes, each saved as a state dict
and loaded through remaster's loader as a user's file would be:

- SPAN: purely local (convolutions), so windows with enough context are exact;
- SwinIR: shifted-window attention, spandrel marks its tiling "discouraged";
- RCAN: channel attention over the whole input's mean, so no tile can be exact.

For each, PSNR (8-bit, dB) of the tiled output against the untiled one, at tiles of 64 and 128,
with remaster's blend (MARGIN px of context, cross-faded over 2 FADE px) and with plain tiles
(same tiles, no context, no fade: what blending avoids), plus the largest difference within 2
output pixels of a tile boundary (the seams).

    python benchmarks/blend_tiles.py [--size 192x160]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from spandrel.architectures.RCAN import RCAN
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR

from remaster.architectures.community.detection import FADE, MARGIN
from remaster.architectures.descriptor import Blended, LoadedModel
from remaster.engines.settings import EngineSettings
from remaster.engines.tiling.tiles import plan_tiles
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_model


def networks() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "SPAN": SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2),
        "SwinIR": SwinIR(
            embed_dim=12, depths=[2, 2], num_heads=[2, 2], window_size=8, upscale=2, upsampler="pixelshuffledirect"
        ),
        "RCAN": RCAN(scale=2, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def seam_error(out: np.ndarray, ref: np.ndarray, height: int, width: int, tile: int, scale: int) -> int:
    """The largest 8-bit difference within 2 output pixels of a tile boundary."""
    near = np.zeros(out.shape[1:3], bool)
    for t in plan_tiles(height, width, tile, 1):
        for edge in (t.rows.start,) if t.rows.start else ():
            near[max(0, scale * edge - 2) : scale * edge + 2, :] = True
        for edge in (t.cols.start,) if t.cols.start else ():
            near[:, max(0, scale * edge - 2) : scale * edge + 2] = True
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))[0]
    return int(diff[near].max())


def tiled(loaded: LoadedModel, frame: np.ndarray, tile: int, tiling: Blended) -> np.ndarray:
    descriptor = replace(loaded.descriptor, tiling=tiling)
    return TorchUpscaler(LoadedModel(loaded.module, descriptor), EngineSettings("cpu", "fp32", tile)).upscale(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="192x160", help="WIDTHxHEIGHT of the test picture")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frame = anime_frame(height, width, 1)[None]
    print(f"{width}x{height} anime test card, fp32, blend: {MARGIN} px context, cross-fade over {2 * FADE} px")
    print(f"{'architecture':<12} {'tile':>5} {'blended dB':>11} {'seam':>5} {'plain dB':>9} {'seam':>5}")
    with tempfile.TemporaryDirectory() as folder:
        for name, net in networks().items():
            path = Path(folder) / f"{name}.pth"
            torch.save(net.eval().state_dict(), path)
            loaded = load_model(str(path))
            untiled = TorchUpscaler(loaded, EngineSettings("cpu", "fp32", 0)).upscale(frame)
            scale = loaded.descriptor.scale
            for tile in (64, 128):
                row = [f"{name:<12} {tile:>5}"]
                for tiling in (Blended(MARGIN, FADE, loaded.descriptor.tiling.align), Blended(0, 0)):
                    out = tiled(loaded, frame, tile, tiling)
                    seam = seam_error(out, untiled, height, width, tile, scale)
                    row.append(f"{psnr(out, untiled):>10.1f} {seam:>5}")
                print(" ".join(row))


if __name__ == "__main__":
    main()

"""Exact tiles against per-tile SE means on ncnn: what each gives against the untiled frame.

    python benchmarks/ncnn_seams.py [--models 2x-no-denoise,...] [--size 128x96] [--tiles 32,64]
        [--vulkan] [--fp16]

For each SE model and tile side: PSNR (float output on [0, 1], peak 1) against the untiled
original graph of (a) remaster's staged tiles with whole-frame means (`engine.ncnn_stages`) and
(b) the whole graph on each tile, which is what ncnn runners (realcugan-ncnn-vulkan,
waifu2x-ncnn-vulkan) do: each tile gates with its own means. The frame is `testcard.anime_frame`.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from remaster.engines.ncnn_engine.stages import (
    NcnnOptions,
    NcnnStages,
    load_net,
    new_net,
    run_staged_tiled,
    tile_multiple,
)
from remaster.engines.tiling.tiles import plan_tiles
from remaster.media.testcard import anime_frame
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_model

DEFAULT_MODELS = "2x-no-denoise,3x-no-denoise,4x-no-denoise,2x-waifu2x-cunet-no-denoise"


def psnr_float(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def whole_graph(net, stages: NcnnStages, window: np.ndarray) -> np.ndarray:
    import ncnn

    array = np.ascontiguousarray(window)
    extractor = net.create_extractor()
    extractor.input(stages.input, ncnn.Mat(array).clone())
    status, out = extractor.extract(stages.output)
    if status != 0:
        raise RuntimeError(f"ncnn status {status}")
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--size", default="128x96", help="WIDTHxHEIGHT of the test frame")
    parser.add_argument("--tiles", default="32,64", help="tile sides in source pixels")
    parser.add_argument("--vulkan", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    options = NcnnOptions(vulkan=args.vulkan, fp16=args.fp16)
    print(f"| model | tile | tiles | exact tiles dB | per-tile means dB |  ({args.size}, {options})")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        packaged = packaged_models()[name]
        model = load_model(name).module
        g = model.geometry
        rgb = torch.from_numpy(anime_frame(height, width, 1)).permute(2, 0, 1)[None].float() / 255
        padded = model.pad(rgb)[0].numpy()
        core = padded.shape[1] - 2 * g.pad, padded.shape[2] - 2 * g.pad
        stages = NcnnStages(packaged.param, packaged.bin, options)
        net = new_net(options)
        load_net(net, packaged.param.read_text(), packaged.bin.read_bytes(), str(packaged.param))
        untiled = whole_graph(net, stages, padded)
        s = g.scale
        for side in (int(v) for v in args.tiles.split(",")):
            tiles = plan_tiles(*core, side, tile_multiple(g, options))
            exact = run_staged_tiled(stages, padded, tiles, g)
            per_tile = np.empty_like(untiled)
            for tile in tiles:
                r, c = tile.rows, tile.cols
                window = padded[:, r.start : r.start + r.length + 2 * g.pad, c.start : c.start + c.length + 2 * g.pad]
                rows, cols = slice(s * r.start, s * (r.start + r.length)), slice(s * c.start, s * (c.start + c.length))
                per_tile[:, rows, cols] = whole_graph(net, stages, window)
            exact_db, per_tile_db = psnr_float(exact, untiled), psnr_float(per_tile, untiled)
            print(f"| {name} | {side} | {len(tiles)} | {exact_db:.1f} | {per_tile_db:.1f} |")


if __name__ == "__main__":
    main()

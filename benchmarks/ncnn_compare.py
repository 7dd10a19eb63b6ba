"""remaster against the ncnn wheel: same frames, same Real-CUGAN .param/.bin, CPU.

    python benchmarks/ncnn_compare.py [--preset 2x-conservative] [--size 480x360] [--frames 16]
        [--precision auto|fp32|bf16] [--rounds 3]

ncnn runs in this process with all cores, fp32 (no fp16/bf16 storage or arithmetic), the
model's own pre- and post-processing (reflect pad, crop, round), reading and writing the same
PNGs. remaster runs as the whole command, `remaster image FOLDER -o OUT`, start-up included.
Both alternate for `--rounds` rounds; the table gives medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from remaster.arch.upcunet import geometry_for
from remaster.bench import psnr
from remaster.imagefiles import read_image, write_image
from remaster.models.catalog import packaged_models
from remaster.presets import get_preset
from remaster.testcard import anime_frame


def ncnn_net(param: Path, threads: int):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    return net


def ncnn_upscale(net, pixels: np.ndarray, scale: int) -> np.ndarray:
    import ncnn

    g = geometry_for(scale)
    h, w = pixels.shape[:2]
    left, right, top, bottom = g.padding(h, w)
    x = pixels.astype(np.float32).transpose(2, 0, 1) / 255
    x = np.ascontiguousarray(np.pad(x, ((0, 0), (top, bottom), (left, right)), mode="reflect"))
    extractor = net.create_extractor()
    extractor.input("in0", ncnn.Mat(x))
    _, out = extractor.extract("out0")
    y = np.array(out)[:, : scale * h, : scale * w]
    if scale == 4:  # the residual the ncnn graph leaves out
        y = y + np.repeat(np.repeat(x[:, top : top + h, left : left + w], 4, axis=1), 4, axis=2)
    return np.clip(np.floor(y * 255 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="2x-conservative")
    parser.add_argument("--size", default="480x360")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    model = packaged_models()[get_preset(args.preset).model]
    threads = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        frames_dir, ours_dir, theirs_dir = Path(tmp, "frames"), Path(tmp, "ours"), Path(tmp, "ncnn")
        for folder in (frames_dir, ours_dir, theirs_dir):
            folder.mkdir()
        for i in range(args.frames):
            write_image(frames_dir / f"{i:04d}.png", anime_frame(height, width, seed=i))
        net = ncnn_net(model.param, threads)
        command = [sys.executable, "-m", "remaster", "image", str(frames_dir), "-o", str(ours_dir)]
        command += ["--preset", args.preset, "--device", "cpu", "--precision", args.precision, "--overwrite"]
        ours, theirs = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            for src in sorted(frames_dir.iterdir()):
                Image.fromarray(ncnn_upscale(net, read_image(src), model.scale)).save(theirs_dir / src.name)
            theirs.append(time.perf_counter() - start)
        agreement = min(
            psnr(read_image(ours_dir / p.name), read_image(theirs_dir / p.name)) for p in sorted(frames_dir.iterdir())
        )

    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(f"{args.preset}, {args.frames} frames of {width}x{height}, {threads} threads, median of {args.rounds}")
    print(f"  remaster image (whole command, {args.precision}): {ours_s:7.2f} s  {ours_s / args.frames:.3f} s/frame")
    print(f"  ncnn wheel (fp32, in process):     {theirs_s:7.2f} s  {theirs_s / args.frames:.3f} s/frame")
    print(f"  speed ratio remaster/ncnn: {theirs_s / ours_s:.2f}x   (worst-frame agreement {agreement:.1f} dB)")


if __name__ == "__main__":
    main()

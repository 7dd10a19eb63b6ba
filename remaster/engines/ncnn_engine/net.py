"""An ncnn.Net set up as remaster runs it: Vulkan or the CPU, fp16 or true fp32, threads.

Without torch: the ncnn side of benchmarks/ncnn_compare.py runs in a process of its own, as a
user of the ncnn wheel would, and must not pay for PyTorch's import.
"""

from __future__ import annotations

from dataclasses import dataclass

import ncnn

from remaster.core.errors import UsageError


@dataclass(frozen=True)
class NcnnOptions:
    """How ncnn runs: on Vulkan device `device` or the CPU, fp16 or fp32, `threads` CPU threads."""

    vulkan: bool = False
    device: int = 0
    fp16: bool = False
    threads: int = 0  # 0: ncnn's default (every core)


def new_net(options: NcnnOptions) -> ncnn.Net:
    """An empty ncnn.Net set up by `options`; load a graph into it next (options count at load time)."""
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = options.vulkan
    # ncnn's Option turns fp16 storage/arithmetic on by default (it applies them where the device
    # has them); fp32 must turn them off, and bf16 as well, or "fp32" is not fp32.
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = options.fp16
    opt.use_bf16_storage = False
    if options.fp16:
        # ncnn's Vulkan 3x3 convolutions pick Winograd F(4,3) or F(2,3) by the layer's input size
        # (convolution_vulkan.cpp: F(2,3) at or below 12 or 18 pixels a side, by device type), so
        # a tile and the whole frame may round differently; in fp16 arithmetic that is visible:
        # tiled against untiled 57-61 dB on llvmpipe (2x, 3x; tiles of 16-48 pixels). With F(4,3)
        # off, and tiles aligned to F(2,3)'s blocks (`tile_multiple`), tiled equals untiled bit for
        # bit (measured: 2x, 3x, waifu2x cunet 2x). The price: 2x on a 128x128 frame took 18.7 s
        # instead of 13.5 s on llvmpipe. In fp32 the two round alike to within 1e-6 (>= 126 dB).
        opt.use_winograd43_convolution = False
    if options.threads:
        opt.num_threads = options.threads
    if options.vulkan:
        # ncnn takes an index past its devices without a word (and runs elsewhere): refuse it here.
        count = ncnn.get_gpu_count()
        if not 0 <= options.device < count:
            raise UsageError(f"Vulkan device {options.device}: ncnn sees {count} Vulkan device(s)")
        net.set_vulkan_device(options.device)
    return net

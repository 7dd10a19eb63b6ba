"""Choosing the device, the precision and the tile size."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from remaster.core.errors import UsageError
from remaster.core.machine import cpu_vendor, host_available_memory
from remaster.core.precision import Precision
from remaster.engines.kinds import Engine
from remaster.engines.vulkan import VULKAN, gpu_devices, parse_vulkan, vulkan_device

DTYPES = {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}
# Fraction of free memory the tile plan may use: the rest is for the model, the output frame
# and the kept tile states between SE stages.
MEMORY_SHARE = 0.5
# Fraction of free host memory the states that tiles keep between SE stages may hold; past it
# they go to a temporary file (engines/tiling/states.py). With MEMORY_SHARE for the tile that is 0.8 of
# free memory, leaving the rest for the input and output frames and the process's own
# (about 0.4 GiB: model, PyTorch, Python; measured with benchmarks/memory.py).
STATE_MEMORY_SHARE = 0.3
STATE_MEMORY_ENV = "REMASTER_STATE_MEMORY"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_TILE = 64
# Bytes a value takes at a 2-byte precision (fp16, bf16) when planning memory: part of a half-precision
# run stays float32 (Real-CUGAN's FLOAT32_LAYERS, the float32 picture in and out). Counted with
# engines/accounting.PeakBytes on 4x-conservative at 288x512 in fp16: 4460 B an input pixel against
# 1800 values x 2 B = 3600 (the issue that found it counted 4307 at 1080p); 1800 x 2.6 = 4680 covers
# it (tests/test_memory_estimate.py counts it again). fp32 plans 4 B a value: counted 5025 of 7200.
HALF_VALUE_BYTES = 2.6
# Share of the device's free memory that the states of several tiles may hold there (they wait on
# the host past it): with MEMORY_SHARE for the tile that leaves a fifth for the model and the frames.
STATE_DEVICE_SHARE = 0.3
# Values a source pixel that tile states keep between SE stages: engines/tiling/states.py measured
# 3.4 GiB of float32 states for a 2048x2048 frame at 2x, 218 values a pixel.
STATE_VALUES_PER_PIXEL = 220
# `--batch auto` takes at most this many frames: the largest batch benchmarks/gpu.py measures
# (1, 2, 4). Past it a batch only adds memory and latency until a GPU run shows it adds speed.
AUTO_BATCH_MAX = 4


DEVICE_CHOICES = (
    "auto, cpu, cuda[:N] (NVIDIA, or AMD through ROCm), mps (Apple), xpu[:N] (Intel) "
    "or vulkan[:N] (any GPU, through ncnn)"
)


def resolve_device(name: str, engine: str = Engine.AUTO) -> torch.device:
    """`auto`: CUDA, then a Vulkan GPU (never a software Vulkan device such as llvmpipe: the
    CPU engines are faster on the same cores), then the CPU; `--engine torch` skips Vulkan.
    A Vulkan device comes back as torch.device("vulkan", N), a name only: the ncnn engine
    runs it, with its frames in host memory. With `--engine openvino`: cpu, or an Intel GPU as
    OpenVINO sees it (xpu[:N]; PyTorch need not see it)."""
    if engine == Engine.OPENVINO:
        from remaster.engines.openvino_engine.runtime import openvino_device

        ov_name = openvino_device(name)
        return torch.device("cpu") if ov_name == "CPU" else torch.device("xpu", int(name.partition(":")[2] or 0))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        gpus = gpu_devices() if engine != Engine.TORCH else []
        return torch.device(VULKAN, gpus[0].index) if gpus else torch.device("cpu")
    index = parse_vulkan(name)
    if index is not None:
        vulkan_device(index)  # a one-line error where there is none
        return torch.device(VULKAN, index)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name}: no CUDA GPU is available to PyTorch here")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UsageError(f"device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_built():
            raise UsageError(f"device {name}: this PyTorch ({torch.__version__}) is built without Apple MPS")
        if not torch.backends.mps.is_available():
            raise UsageError(f"device {name}: no Apple GPU is available to PyTorch here (MPS needs macOS 12.3+)")
    elif device.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        if xpu is None or not xpu._is_compiled():
            raise UsageError(f"device {name}: this PyTorch ({torch.__version__}) is built without Intel XPU")
        if not xpu.is_available():
            raise UsageError(f"device {name}: no Intel GPU is available to PyTorch here")
        if (device.index or 0) >= xpu.device_count():
            raise UsageError(f"device {name}: only {xpu.device_count()} XPU device(s)")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {name!r}; use {DEVICE_CHOICES}")
    return device


def device_label(name: str) -> str:
    """`--device` as the machine has it: "cuda:0 (NVIDIA H200)", "cpu (16 threads)"."""
    device = resolve_device(name)
    if device.type == "cuda":
        # ROCm builds of PyTorch drive AMD GPUs through the same torch.cuda API.
        runtime = f", ROCm {torch.version.hip}" if torch.version.hip else ""
        return f"{device} ({torch.cuda.get_device_name(device)}{runtime})"
    if device.type == "xpu":
        return f"{device} ({torch.xpu.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    if device.type == VULKAN:
        return vulkan_device(device.index or 0).label
    return f"cpu ({torch.get_num_threads()} threads)"


def precision_name(dtype: torch.dtype) -> Precision:
    """torch.bfloat16 -> "bf16": the name `--precision` takes."""
    return next(name for name, known in DTYPES.items() if known == dtype)


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic: AVX-512 BF16 or AMX on x86. oneDNN's own check
    (`_is_mkldnn_bf16_supported`) also says yes on any AVX-512 CPU (Skylake-X, Cascade Lake),
    where its bf16 kernels are an emulation slower than fp32, so on x86 the instruction sets
    decide; elsewhere (aarch64) oneDNN's check is the one there is."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def cpu_bf16_pays() -> bool:
    """Whether bf16 runs faster than fp32 on this CPU, which `--precision auto` asks: with AMX, or
    with AVX-512 BF16 on a CPU that is not Intel's. Intel's AVX-512 BF16 dot product (VDPBF16PS)
    does no more multiply-adds a cycle than its fp32 FMAs, so there bf16 without AMX only adds the
    conversions: measured 1.1-1.75x slower than fp32 for every family on an Intel Xeon without AMX
    (docs/engine.md), against 1.8x faster on an AMD EPYC with AVX-512 BF16."""
    if not cpu_has_bf16():
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    return bool(torch.cpu._is_amx_tile_supported()) or cpu_vendor() != "GenuineIntel"


def resolve_precision(
    name: str, device: torch.device, auto_cpu_bf16: bool = False, supported: tuple[Precision, ...] = tuple(DTYPES)
) -> torch.dtype:
    """`auto`: fp16 on a GPU; on a CPU, bf16 where the model allows it and bf16 is the faster there
    (`cpu_bf16_pays`), else fp32.

    Against fp32 bf16's 8-bit mantissa gives 42-54 dB depending on the model and the picture:
    `auto_cpu_bf16` says the model was measured at >= 52 dB (remaster.models.fidelity).
    `--precision bf16` runs any model whose `supported` precisions have it (a community model's,
    as spandrel declares them; remaster's own: all) on any CPU with native bf16.
    """
    if device.type == VULKAN:
        return _vulkan_precision(name, device)
    if name == Precision.AUTO:
        if device.type != "cpu":  # any GPU: CUDA (and ROCm), MPS, XPU all have fp16 arithmetic
            # A model that breaks in fp16 (spandrel says so of some) runs in bf16, else fp32.
            preferred = next((p for p in (Precision.FP16, Precision.BF16) if p in supported), Precision.FP32)
            return DTYPES[preferred]
        return torch.bfloat16 if auto_cpu_bf16 and Precision.BF16 in supported and cpu_bf16_pays() else torch.float32
    if name not in DTYPES:
        raise UsageError(f"unknown precision {name!r}; use auto, {', '.join(DTYPES)}")
    if name not in supported:
        raise UsageError(f"precision {name}: this model does not support it (it runs in {', '.join(supported)})")
    if name == Precision.BF16 and device.type == "cpu" and not cpu_has_bf16():
        raise UsageError("precision bf16: this CPU has neither AVX-512 BF16 nor AMX")
    return DTYPES[name]


def _vulkan_precision(name: str, device: torch.device) -> torch.dtype:
    """fp16 storage and arithmetic where the Vulkan device has them, else fp32; no bf16 (ncnn's
    Vulkan path has none: net.cpp turns Vulkan off when bf16 storage is asked for)."""
    fp16 = vulkan_device(device.index or 0).fp16
    if name == Precision.AUTO:
        return torch.float16 if fp16 else torch.float32
    if name == Precision.FP16 and not fp16:
        raise UsageError(f"precision fp16: {vulkan_device(device.index or 0).label} has no fp16 storage/arithmetic")
    if name not in (Precision.FP32, Precision.FP16):
        raise UsageError(f"precision {name}: a Vulkan device runs fp32 or fp16")
    return DTYPES[name]


def free_memory(device: torch.device) -> int:
    """Bytes a new allocation can have on `device` now. On CUDA that is the driver's free memory
    and what PyTorch's caching allocator holds without using it (`cuda_free_bytes`)."""
    if device.type == "cuda":
        driver_free, _ = torch.cuda.mem_get_info(device)
        return cuda_free_bytes(driver_free, torch.cuda.memory_reserved(device), torch.cuda.memory_allocated(device))
    if device.type == "xpu":
        return torch.xpu.mem_get_info(device)[0]
    if device.type == "mps":  # unified memory: what Metal recommends for this process, less what it holds
        return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    return host_available_memory()


def cuda_free_bytes(driver_free: int, reserved: int, allocated: int) -> int:
    """Free memory as PyTorch can use it: cudaMemGetInfo's free bytes do not count what the caching
    allocator has reserved and holds no tensor in (after a batch, that batch's whole peak), which
    PyTorch hands out again before it asks the driver for more."""
    return driver_free + max(0, reserved - allocated)


def value_bytes(itemsize: int) -> float:
    """Bytes to plan for a value of a model run at `itemsize` bytes (`HALF_VALUE_BYTES` for 2)."""
    return HALF_VALUE_BYTES if itemsize == 2 else float(itemsize)


def states_fit_on_device(free_bytes: int, height: int, width: int, batch: int) -> bool:
    """Whether the tile states of a batch of HxW frames fit in their share of a GPU's free memory, so
    that they need not wait in host memory between SE stages (pure, as `fit_tile`)."""
    return STATE_VALUES_PER_PIXEL * 4 * height * width * batch <= free_bytes * STATE_DEVICE_SHARE


def fit_tile(free_bytes: int, activations_per_pixel: int, height: int, width: int, batch: int, itemsize: int) -> int:
    """The largest tile side whose activations for `batch` frames fit in a share of `free_bytes`;
    0 = whole frame. A pure function of its numbers, so that tests give it any machine's memory.

    `activations_per_pixel`: values alive at once per input pixel, untiled, batch 1 (the model's
    `ModelDescriptor.activations_per_pixel`); `itemsize`: bytes a value (2 for fp16: `value_bytes`)."""
    if whole_frame_bytes(activations_per_pixel, height, width, batch, itemsize) <= free_bytes:
        return 0
    per_pixel = activations_per_pixel * value_bytes(itemsize) * batch
    return max(MIN_TILE, int(math.sqrt(free_bytes * MEMORY_SHARE / per_pixel)) // 4 * 4)


def whole_frame_bytes(activations_per_pixel: int, height: int, width: int, batch: int, itemsize: int) -> int:
    """The free memory below which `fit_tile` tiles a batch of HxW frames (pure, as `fit_tile`)."""
    return math.ceil(activations_per_pixel * value_bytes(itemsize) * batch * height * width / MEMORY_SHARE)


def fit_batch(
    free_bytes: int, activations_per_pixel: int, height: int, width: int, itemsize: int, most: int = AUTO_BATCH_MAX
) -> int:
    """The most whole frames (up to `most`) whose activations fit in a share of `free_bytes`; 1 when
    not even one whole frame fits (that one is then tiled: `fit_tile`). A pure function, as `fit_tile`."""
    per_frame = activations_per_pixel * value_bytes(itemsize) * height * width
    return max(1, min(most, int(free_bytes * MEMORY_SHARE // per_frame)))


def auto_tile(
    activations_per_pixel: int, height: int, width: int, batch: int, dtype: torch.dtype, device: torch.device
) -> int:
    """`--tile auto`: `fit_tile` for the free memory of `device` now."""
    return fit_tile(free_memory(device), activations_per_pixel, height, width, batch, dtype.itemsize)


def auto_batch(activations_per_pixel: int, height: int, width: int, dtype: torch.dtype, device: torch.device) -> int:
    """`--batch auto`: 1 on a CPU (which runs a batch frame by frame anyway: engines/torch_engine/upscaler.py), else
    the most whole frames that fit in the device's free memory now (`fit_batch`)."""
    if device.type == "cpu":
        return 1
    return fit_batch(free_memory(device), activations_per_pixel, height, width, dtype.itemsize)


@contextmanager
def model_numerics(benchmark: bool) -> Iterator[None]:
    """The process-wide switches a model call runs under, set for the call and put back after:

    * IEEE float32: PyTorch turns cuDNN's float32 convolutions into TF32 by default (a 10-bit
      mantissa: 62.5-63.8 dB against true float32 in a CPU emulation, worse than fp16's 65.4), so
      `--precision fp32` and the float32 layers of an fp16 run would not be what they say.
    * cuDNN's benchmark mode when `benchmark` is asked for, or left on where the caller set it.

    Set on any device (they are flags, read only by CUDA's kernels), so that a CPU run takes the
    same path and the tests can see them set."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    was = torch.backends.cudnn.benchmark, conv.fp32_precision, matmul.fp32_precision
    torch.backends.cudnn.benchmark = benchmark or was[0]
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, conv.fp32_precision, matmul.fp32_precision = was


def parse_bytes(value: str) -> int:
    """`0`, `1500000000`, `512M`, `2G`, `2GiB` -> bytes (K, M, G, T are powers of 1024)."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    try:
        amount = float(number)
    except ValueError:
        raise UsageError(f"want a size such as 0, 512M or 2G, got {value!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise UsageError(f"want a size such as 0, 512M or 2G, got {value!r}")
    return int(amount * _UNITS[unit])


def state_memory_budget(option: int | None = None) -> int:
    """Bytes of host memory the kept tile states may use before they spill to disk: the option
    if given, else $REMASTER_STATE_MEMORY (0 = always spill), else a share of free memory now."""
    if option is not None:
        return option
    value = os.environ.get(STATE_MEMORY_ENV)
    if value:
        try:
            return parse_bytes(value)
        except UsageError as exc:
            raise UsageError(f"${STATE_MEMORY_ENV}: {exc}") from None
    return int(free_memory(torch.device("cpu")) * STATE_MEMORY_SHARE)

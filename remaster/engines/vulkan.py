"""The Vulkan devices the ncnn wheel sees: their names, kinds and fp16 support.

No torch here: `--device vulkan:N` is checked with this alone. The ncnn wheel loads the Vulkan
loader (libvulkan) itself when first asked for a device; without a loader, or without a driver
(an ICD) for any device, it simply counts none.

A device whose Vulkan type is "cpu" (Mesa's llvmpipe/lavapipe, SwiftShader) is a software
rasteriser running on the host's cores: it is not a GPU, and `--device auto` passes it over
(`gpu_devices`). `--device vulkan:N` still runs on it, which is how CI tests this path.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from remaster.core.errors import UsageError

VULKAN = "vulkan"
# ncnn's GpuInfo.type() (gpu.h): 0 discrete, 1 integrated, 2 virtual, 3 cpu.
DEVICE_KINDS = {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}
SOFTWARE_KIND = "cpu"
FP16_FLAGS = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")
# The smallest graph ncnn loads: one input, enough for ncnn to check the device's options.
_EMPTY_GRAPH = "7767517\n1 1\nInput in0 0 1 in0\n"


@dataclass(frozen=True)
class VulkanDevice:
    index: int
    name: str
    kind: str  # discrete, integrated, virtual or cpu (a software device)
    fp16: bool  # fp16 storage and arithmetic
    # Bytes of device memory ncnn may use (its get_heap_budget: the Vulkan memory budget where the
    # driver reports one, else a share of the device-local heap).
    memory: int

    @property
    def software(self) -> bool:
        return self.kind == SOFTWARE_KIND

    @property
    def label(self) -> str:
        """For messages: `vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits), software on the CPU, fp16)`."""
        kind = "software on the CPU" if self.software else f"{self.kind} GPU"
        return f"{VULKAN}:{self.index} ({self.name}, {kind}, {'fp16' if self.fp16 else 'fp32 only'})"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """ncnn prints every device's capabilities to file descriptor 2 when it first looks (C++,
    not Python's sys.stderr): four lines a device on every command. Silenced while it looks."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_ncnn() -> ModuleType | None:
    try:
        import ncnn
    except ImportError:
        return None
    return ncnn


def _fp16(ncnn: ModuleType, index: int) -> bool:
    """Whether the device has fp16 storage and arithmetic. The wheel's GpuInfo has no such
    attribute; ncnn's Net.load_param turns off (net.cpp, "sanitize use options") every fp16
    option the device lacks, so a one-layer graph loaded with them on says which are left."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    net.set_vulkan_device(index)
    for flag in FP16_FLAGS:
        setattr(net.opt, flag, True)
    net.load_param_mem(_EMPTY_GRAPH)
    return bool(net.opt.use_fp16_storage and net.opt.use_fp16_arithmetic)


@cache
def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """Every Vulkan device ncnn sees, in its order; none without the ncnn wheel or a Vulkan loader."""
    ncnn = import_ncnn()
    if ncnn is None:
        return ()
    with _quiet_stderr():
        count = ncnn.get_gpu_count()
        devices = []
        for index in range(count):
            info = ncnn.get_gpu_info(index)
            kind = DEVICE_KINDS.get(info.type(), "unknown")
            memory = ncnn.get_gpu_device(index).get_heap_budget() << 20  # ncnn says MiB
            devices.append(VulkanDevice(index, info.device_name(), kind, _fp16(ncnn, index), memory))
    return tuple(devices)


def gpu_devices() -> list[VulkanDevice]:
    """The Vulkan devices that are GPUs: what `--device auto` may take (software ones are not)."""
    return [device for device in vulkan_devices() if not device.software]


def parse_vulkan(name: str) -> int | None:
    """`vulkan` -> 0, `vulkan:2` -> 2; None for a name that is not a Vulkan device's."""
    head, _, index = name.partition(":")
    if head != VULKAN:
        return None
    if not index:
        return 0
    if not index.isdigit():
        raise UsageError(f"device {name!r}: want vulkan or vulkan:N")
    return int(index)


def vulkan_device(index: int) -> VulkanDevice:
    """The device `--device vulkan:index` names, or a one-line UsageError saying why there is none."""
    if import_ncnn() is None:
        raise UsageError(f"device {VULKAN}:{index}: the ncnn package is not installed (pip install 'remaster[vulkan]')")
    devices = vulkan_devices()
    if not devices:
        raise UsageError(
            f"device {VULKAN}:{index}: no Vulkan device (no Vulkan loader libvulkan.so.1, or no driver for any device)"
        )
    if index >= len(devices):
        raise UsageError(
            f"device {VULKAN}:{index}: only {len(devices)} Vulkan device(s), vulkan:0 to vulkan:{len(devices) - 1}"
        )
    return devices[index]

"""What this machine is, read without PyTorch: the CPU, its cores, free memory, GPU device files."""

from __future__ import annotations

import glob
import os
import platform
from importlib.metadata import PackageNotFoundError, version

# Device files a GPU driver makes: NVIDIA's, AMD's ROCm (kfd) and the DRM render nodes (Vulkan,
# Intel and AMD GPUs). Where one comes or goes, `--device auto` may pick another device.
GPU_DEVICE_FILES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dri/renderD*")


def _cpuinfo(field: str) -> str | None:
    """A field of the first CPU in /proc/cpuinfo, or None where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """x86's vendor string (GenuineIntel, AuthenticAMD), "" where it cannot be read."""
    return _cpuinfo("vendor_id") or ""


def cpu_threads() -> int:
    """Every core this process may use (ncnn's own default is the physical "big" cores only)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def host_available_memory() -> int:
    """Bytes of host memory a new allocation can have now (MemAvailable; 4 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def installed_version(package: str) -> str:
    """An installed distribution's version, read without importing it; "none" where it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def gpu_device_files() -> list[str]:
    """The GPU device files present now (GPU_DEVICE_FILES)."""
    return sorted(path for pattern in GPU_DEVICE_FILES for path in glob.glob(pattern))

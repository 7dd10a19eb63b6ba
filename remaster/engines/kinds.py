"""The engines `--engine` takes; no torch here, so that the command line can parse them without it."""

from __future__ import annotations

from enum import StrEnum

from remaster.core.modes import parse_mode


class Engine(StrEnum):
    # On a CPU, whichever of torch and ncnn measured faster for the model (engines/choice.py);
    # on CUDA torch, on Vulkan ncnn.
    AUTO = "auto"
    TORCH = "torch"  # PyTorch: CPU or CUDA
    NCNN = "ncnn"  # the ncnn wheel: CPU or Vulkan, packaged models and .param files only


parse_engine = parse_mode(Engine, "--engine")

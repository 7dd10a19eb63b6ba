"""The engines `--engine` takes; no torch here, so that the command line can parse them without it."""

from __future__ import annotations

from enum import StrEnum

from remaster.core.modes import parse_mode


class Engine(StrEnum):
    # On a CPU, whichever of torch, ncnn and openvino measured fastest for the model
    # (engines/choice.py); on CUDA tensorrt where installed, else torch; on Vulkan ncnn.
    AUTO = "auto"
    TORCH = "torch"  # PyTorch: CPU or CUDA
    NCNN = "ncnn"  # the ncnn wheel: CPU or Vulkan, packaged models and .param files only
    OPENVINO = "openvino"  # OpenVINO on graphs exported to ONNX: CPU or Intel GPU (xpu[:N]); remaster[openvino]
    TENSORRT = "tensorrt"  # TensorRT engines built from the same graphs: NVIDIA GPUs (cuda[:N]); remaster[tensorrt]


parse_engine = parse_mode(Engine, "--engine")

# What `--engine auto` takes on a CPU where set (auto, torch, ncnn or openvino): a machine's standing
# choice, read by every command and every queued job; the test suite sets torch (tests/conftest.py).
ENGINE_ENV = "REMASTER_ENGINE"

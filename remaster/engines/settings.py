"""The engine options as the engines take them: device, precision, tile, engine and the speed switches.

Read without PyTorch: the CLI builds them before any engine is imported, and a prepared run
(engines/openvino_engine/prepared.py) keys its records by them.
"""

from __future__ import annotations

from dataclasses import dataclass

from remaster.core.errors import UsageError
from remaster.core.precision import Precision

# `--tile` takes multiples of this: every architecture's tile multiple divides it (SE stages: 4).
TILE_MULTIPLE = 4


def parse_tile(value: str | int) -> int | None:
    """`auto` -> None; else a side in pixels: 0 (whole frame) or a multiple of 4, at least 64."""
    if value == "auto":
        return None
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: want auto, 0 or a multiple of 4 from 64 up") from None
    if tile != 0 and (tile < 64 or tile % TILE_MULTIPLE):
        raise UsageError(f"--tile {value}: want auto, 0 or a multiple of 4 from 64 up")
    return tile


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    precision: Precision = Precision.AUTO
    tile: str | int = "auto"
    compile: bool = False
    # Bytes of host memory that tile states may hold between SE stages before the rest goes to
    # a temporary file; None: $REMASTER_STATE_MEMORY, else a share of free memory (device.py).
    state_memory: int | None = None
    # Speed switches that benchmarks/gpu.py measures on a GPU; off until a measurement keeps them.
    # torch.compile's mode: "default", or "reduce-overhead" (CUDA graphs for the fixed shapes).
    compile_mode: str = "default"
    cudnn_benchmark: bool = False  # CUDA: let cuDNN time its algorithms for each shape, and keep the fastest
    # auto, torch, ncnn, openvino or tensorrt (engines/kinds.py); engines/choice.make_upscaler reads it.
    engine: str = "auto"
    # Set where `--engine auto` chose the engine: one that cannot run here (a TensorRT build that
    # fails) says so in one line and the torch engine runs instead; asked for by name, it is an error.
    fallback: bool = False

"""The precisions `--precision` takes; no torch here, so that the command line can parse them
without loading it (engines/device.py maps them to dtypes)."""

from __future__ import annotations

from enum import StrEnum

from remaster.core.modes import parse_mode


class Precision(StrEnum):
    AUTO = "auto"  # fp16 on CUDA; on a CPU bf16 where the model allows it and the CPU has it, else fp32
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


parse_precision = parse_mode(Precision, "--precision")

# What a model runs in unless it says otherwise (remaster's own architectures run in all three).
COMPUTED_PRECISIONS = (Precision.FP32, Precision.BF16, Precision.FP16)

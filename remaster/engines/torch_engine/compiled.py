"""`--compile`: a network run through torch.compile, or as it is where compiling fails.

torch.compile builds kernels on the first call of each input shape, which needs a working
backend (a C++ compiler for the CPU, Triton for CUDA). Where that is missing or fails, the job
should not: the first failure is said in one line and the network runs uncompiled from then on.
The engine says, once, what the first frame cost with compiling (`Upscaler.upscale_rgb`), so that
a user can tell the pause at the first frame from a hang and weigh it against the speed gained
(benchmarks/gpu.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CompileState:
    """What one model's compiled parts (its SE stages, or its body) share: whether compiling
    failed, so that all of them fall back together, and whether the cost was said."""

    failed: bool = False
    cost_said: bool = False


def say(message: str) -> None:
    print(f"remaster: --compile: {message}", file=sys.stderr)


def _compiler_failure() -> type[Exception]:
    # Imported here, not at the top: torch._dynamo takes longer to import than torch itself (about
    # 1.5 s, `python -X importtime`), and a run without --compile never needs it. torch.compile has
    # imported it by the time this is asked.
    from torch._dynamo.exc import TorchDynamoException

    return TorchDynamoException


class Compiled:
    """`function` compiled (dynamic=False: one kernel set per input shape, as the few tile
    shapes give), with the fallback and the note described above."""

    def __init__(self, function: Callable[..., Any], mode: str, state: CompileState):
        self.function = function
        self.compiled = torch.compile(function, dynamic=False, mode=mode)
        self.state = state

    def __call__(self, *args: Any) -> Any:
        if self.state.failed:
            return self.function(*args)
        try:
            result = self.compiled(*args)
        except _compiler_failure() as exc:  # the compiler's failure, not the network's (out of memory is not one)
            self.state.failed = True
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            say(f"torch.compile failed ({reason}); running uncompiled")
            return self.function(*args)
        return result

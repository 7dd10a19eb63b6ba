"""Print the pip arguments that install the torchvision built for the torch in this venv.

torchvision's compiled operators must match torch's exact version and build (CUDA, ROCm, CPU).
torch 2.N.P pairs with torchvision 0.(N+15).P (2.13.0 with 0.28.0, 2.14.1 with 0.29.1). A torch
from PyPI has no local version label (its build is PyPI's default: CUDA on Linux x86_64), and
PyPI's torchvision of the same version is built for it. A torch from PyTorch's own index carries
its build in the label (2.13.0+cpu, 2.8.0+rocm6.4, 2.13.0+cu126) and its torchvision lives on the
same index under the same label. Used by scripts/run-tests.sh; prints nothing for a torch it
cannot pair (not 2.x).
"""

from __future__ import annotations

import importlib.metadata
import re

PYTORCH_INDEX = "https://download.pytorch.org/whl"


def pip_arguments(torch_version: str) -> list[str]:
    match = re.fullmatch(r"2\.(\d+)\.(\d+)(?:\+([\w.]+))?", torch_version)
    if match is None:
        return []
    minor, patch, label = match.groups()
    torchvision = f"0.{int(minor) + 15}.{patch}"
    # torch pinned to itself: the resolver must keep the installed build, never swap it.
    if label is None:
        return [f"torch=={torch_version}", f"torchvision=={torchvision}"]
    pinned = [f"torch=={torch_version}", f"torchvision=={torchvision}+{label}"]
    return [*pinned, "--extra-index-url", f"{PYTORCH_INDEX}/{label}"]


if __name__ == "__main__":
    print(" ".join(pip_arguments(importlib.metadata.version("torch"))))

"""Other torch accelerators: `--device mps` and `--device xpu` run where the installed PyTorch has
them; where it lacks them the command says so in one line, exit 2, before any work."""

from __future__ import annotations

import pytest
import torch

from remaster.cli import main
from remaster.core.errors import UsageError
from remaster.core.precision import Precision
from remaster.demo.samples import EpisodeSpec, make_episode
from remaster.engines.device import device_label, resolve_device, resolve_precision

HAS_MPS = torch.backends.mps.is_available()
HAS_XPU = hasattr(torch, "xpu") and torch.xpu.is_available()


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    spec = EpisodeSpec(width=64, height=48, seconds=1.0, cover_image=False)
    return make_episode(tmp_path_factory.mktemp("src") / "episode.mkv", spec)


@pytest.mark.parametrize(
    ("device", "present", "lacks"),
    [
        ("mps", HAS_MPS, f"device mps: this PyTorch ({torch.__version__}) is built without Apple MPS"),
        ("xpu", HAS_XPU, f"device xpu: this PyTorch ({torch.__version__}) is built without Intel XPU"),
        ("xpu:1", HAS_XPU, f"device xpu:1: this PyTorch ({torch.__version__}) is built without Intel XPU"),
    ],
)
def test_an_accelerator_this_pytorch_lacks_is_one_line(episode, tmp_path, capsys, device, present, lacks):
    if present:
        pytest.skip(f"this PyTorch has {device}")
    built = torch.backends.mps.is_built() if device == "mps" else torch.xpu._is_compiled()
    if built:  # built with it, but no such GPU here
        lacks = f"device {device}: no {'Apple' if device == 'mps' else 'Intel'} GPU is available to PyTorch here"
    output = tmp_path / "out.mkv"
    assert main([str(episode), "-o", str(output), "--device", device]) == 2
    err = capsys.readouterr().err
    assert lacks in err and len(err.strip().splitlines()) == 1, err
    assert not output.exists() and not (tmp_path / ".out.mkv.remaster").exists()


@pytest.mark.parametrize("name", ["tpu", "hpu"])  # one torch does not know, one it knows and remaster does not run
def test_an_unknown_device_lists_the_kinds(name):
    kinds = r"use auto, cpu, cuda\[:N\] \(NVIDIA, or AMD through ROCm\), mps \(Apple\), xpu\[:N\] \(Intel\) or vulkan"
    with pytest.raises(UsageError, match=kinds):
        resolve_device(name)


@pytest.mark.parametrize("kind", ["mps", "xpu"])
def test_an_accelerator_runs_fp16_under_auto(kind):
    """The precision rule on a device object only (nothing runs on it): any PyTorch, any machine."""
    assert resolve_precision(Precision.AUTO, torch.device(kind)) == torch.float16


@pytest.mark.skipif(not (HAS_MPS or HAS_XPU), reason="this PyTorch has neither MPS nor XPU")
def test_a_present_accelerator_is_taken_at_fp16():
    device = resolve_device("mps" if HAS_MPS else "xpu")
    assert resolve_precision(Precision.AUTO, device) == torch.float16
    assert device_label(str(device)).startswith(device.type)

"""Model files a user gives: read without running pickled code, unwrapped as training frameworks
save them, named in presets by path; blended tiles add up to the untiled picture. None of this
needs spandrel (tests/test_community_models.py has what does)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

from remaster.cli import main
from remaster.core.errors import UsageError, WeightsError
from remaster.core.precision import Precision
from remaster.engines.device import resolve_precision
from remaster.engines.tiling.blended import run_blended_tiled
from remaster.engines.tiling.tiles import plan_tiles
from remaster.media.testcard import anime_frame
from remaster.models.loader import load_checkpoint, load_model


class RunsCommand:
    """Pickled, it names os.system: unpickling it the ordinary way runs the command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def _compact_state(scale: int = 2) -> dict[str, torch.Tensor]:
    """A small random SRVGGNetCompact state dict in the official key layout (num_conv 2, 8 features)."""
    torch.manual_seed(3)
    state: dict[str, torch.Tensor] = {}
    for index in range(0, 8, 2):  # body.0 conv, body.1 PReLU, ... body.6 the last conv
        last = index == 6
        out_ch = 3 * scale * scale if last else 8
        state[f"body.{index}.weight"] = torch.randn(out_ch, 3 if index == 0 else 8, 3, 3) * 0.1
        state[f"body.{index}.bias"] = torch.zeros(out_ch)
        if not last:
            state[f"body.{index + 1}.weight"] = torch.full((8,), 0.25)
    return state


def test_pickled_code_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save({"params": _compact_state(), "hook": RunsCommand(f"touch {marker}")}, evil)
    with pytest.raises(WeightsError, match=": refused") as caught:
        load_checkpoint(evil)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{evil}: refused") and "posix.system" in message
    assert not marker.exists()
    # The same through the command line: one line, exit 2, nothing written, nothing run.
    picture = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(anime_frame(32, 32)).save(picture)
    out = tmp_path / "out.png"
    assert main(["image", str(picture), "-o", str(out), "--model", str(evil)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(evil) in err[0] and "refused" in err[0]
    assert not marker.exists() and not out.exists()


def test_a_whole_pickled_module_is_refused_too(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(nn.Conv2d(3, 3, 3), path)  # torch.save(model): the class is named in the pickle
    with pytest.raises(WeightsError, match=r"refused: it holds pickled Python code or objects \(torch\.nn"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"params_ema": s, "iter": 5},  # BasicSR (Real-ESRGAN's training code)
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},  # DataParallel under Lightning
        lambda s: {"netG." + k: v for k, v in s.items()},
    ],
    ids=["params_ema", "module-prefix", "netG-prefix"],
)
def test_training_checkpoints_are_unwrapped_into_remasters_own_architecture(tmp_path, wrap):
    path = tmp_path / "compact.pth"
    torch.save(wrap(_compact_state()), path)
    loaded = load_checkpoint(path)
    assert loaded.descriptor.architecture == "SRVGGNetCompact" and loaded.descriptor.scale == 2


def test_unknown_architecture_without_spandrel_says_what_to_install(tmp_path, monkeypatch):
    # None in sys.modules makes `import spandrel` raise ImportError, as where it is not installed.
    monkeypatch.setitem(sys.modules, "spandrel", None)
    path = tmp_path / "span.pth"
    torch.save({"conv_1.sk.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match=r"pip install 'remaster\[models\]'") as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "UpCunet, SRVGGNetCompact, RRDBNet" in message and "pip install 'remaster[models]'" in message


def test_preset_names_a_model_file_by_path(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "presets" / "models").mkdir(parents=True)
    torch.save(_compact_state(), home / "presets" / "models" / "my-compact.pth")
    (home / "presets" / "my-show.toml").write_text('description = "mine"\n[model]\npath = "models/my-compact.pth"\n')
    monkeypatch.setenv("REMASTER_HOME", str(home))
    picture, out = tmp_path / "in.png", tmp_path / "out.png"
    from PIL import Image

    Image.fromarray(anime_frame(24, 20)).save(picture)
    assert main(["image", str(picture), "-o", str(out), "--preset", "my-show", "--tile", "0"]) == 0
    assert Image.open(out).size == (40, 48)
    (home / "presets" / "both.toml").write_text('[model]\nname = "2x-conservative"\npath = "x.pth"\n')
    assert main(["image", str(picture), "-o", str(tmp_path / "o2.png"), "--preset", "both"]) == 2
    assert "[model] wants either name = ... or path = ..." in capsys.readouterr().err


class NearestTwice(nn.Module):
    """A purely pointwise 2x network: any tiling of it is exact, so blended tiles must be too."""

    scale = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="nearest") * 0.5 + 0.25


@pytest.mark.parametrize("tile,margin,fade,align", [(64, 32, 16, 1), (64, 8, 8, 8), (96, 32, 16, 16), (64, 0, 0, 1)])
def test_blend_weights_add_up_to_one_everywhere(tile, margin, fade, align):
    x = torch.rand(1, 3, 150, 203)
    body = NearestTwice()
    untiled = body(x)
    tiles = plan_tiles(150, 203, tile, 1)
    assert len(tiles) > 4
    blended = run_blended_tiled(body, x, tiles, margin, fade, 2, align)
    assert (blended - untiled).abs().max().item() <= 1e-6


def test_a_models_precisions_bound_what_runs():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    fp32_only = (Precision.FP32,)
    with pytest.raises(UsageError, match="precision fp16: this model does not support it"):
        resolve_precision(Precision.FP16, cpu, supported=fp32_only)
    assert resolve_precision(Precision.AUTO, cuda, supported=(Precision.FP32, Precision.BF16)) == torch.bfloat16
    assert resolve_precision(Precision.AUTO, cuda, supported=fp32_only) == torch.float32
    assert resolve_precision(Precision.AUTO, cuda) == torch.float16


def test_safetensors_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(WeightsError, match=r"needs the safetensors package: pip install 'remaster\[models\]'"):
        load_model(str(path))


def test_a_malformed_preset_is_skipped_with_a_warning_unless_asked_for(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    broken = home / "presets" / "typo.toml"
    broken.write_text('[model]\nname = "2x-conservative"\n[encoder]\ncrf = "sixteen"\n')
    monkeypatch.setenv("REMASTER_HOME", str(home))
    warning = f'remaster: warning: {broken}: [encoder] crf = \'sixteen\': want a number; skipped'
    assert main(["presets"]) == 0
    out, err = capsys.readouterr()
    assert "2x-conservative" in out and err.strip() == warning, err
    # Another preset asked for by name is read alone (get_preset reads one file): the broken one is not read.
    assert main(["presets", "--show", "2x-conservative"]) == 0
    assert "error" not in capsys.readouterr().err
    assert main(["presets", "--show", "typo"]) == 2
    assert capsys.readouterr().err.strip() == f"remaster: error: {broken}: [encoder] crf = 'sixteen': want a number"


def test_a_safetensors_file_is_read_and_its_shapes_checked(tmp_path):
    from safetensors.torch import save_file

    state = _compact_state()
    good, bad = tmp_path / "compact-2x.safetensors", tmp_path / "wrong-2x.safetensors"
    save_file({key: value.contiguous() for key, value in state.items()}, str(good))
    assert load_model(str(good)).descriptor.scale == 2
    first = next(key for key, value in state.items() if value.dim() == 4)
    state[first] = torch.zeros(*state[first].shape[:-1], state[first].shape[-1] + 2)  # a 5x5 kernel for a 3x3
    save_file({key: value.contiguous() for key, value in state.items()}, str(bad))
    with pytest.raises(WeightsError) as refused:
        load_model(str(bad))
    assert str(refused.value).startswith(f"{bad}: ") and "\n" not in str(refused.value), refused.value

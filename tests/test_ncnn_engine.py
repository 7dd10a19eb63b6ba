"""The ncnn engine (issue 15): packaged models through the ncnn wheel on Vulkan and on the CPU.

Vulkan runs here on Mesa's llvmpipe, a software device (scripts/run-tests.sh installs it):
slow, so the frames are tiny and the models few. Every output is checked against the torch
engine in fp32 on the same frame: fp32 >= 60 dB, fp16 >= 50 dB (issue 15's acceptance).
Measured on this machine (45x37 frame): fp32 86-94 dB, fp16 53-57 dB; llvmpipe has fp16
storage and arithmetic, so the fp16 path runs for real.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import bf16_for_auto

from remaster.cli import main
from remaster.core.errors import UsageError
from remaster.engines.choice import cache_key, cache_path, choose_cpu_engine, cpu_candidates, make_upscaler
from remaster.engines.device import resolve_device
from remaster.engines.ncnn_engine.upscaler import NcnnUpscaler
from remaster.engines.openvino_engine.runtime import openvino_available
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.engines.vulkan import vulkan_devices
from remaster.media.imagefiles import read_image, write_image
from remaster.models.loader import load_model
from tests.conftest import picture, psnr

ncnn = pytest.importorskip("ncnn", reason="the ncnn wheel is not installed")
needs_vulkan = pytest.mark.skipif(
    not vulkan_devices(), reason="no Vulkan device: install libvulkan1 and mesa-vulkan-drivers (llvmpipe)"
)

# An odd size: both the alignment padding and the crop after the network are exercised.
HEIGHT, WIDTH = 37, 45
# The thresholds against the torch engine in fp32.
MIN_DB = {"fp32": 60.0, "fp16": 50.0}
# Real-CUGAN 2x/3x/4x (SE stages, reflect), waifu2x upconv_7 (local, unpadded, replicate) and
# cunet (SE, replicate), Real-ESRGAN Compact (local, reflect, the 2x graph resizes the 4x net).
MODELS = ["2x-conservative", "3x-conservative", "4x-conservative", "2x-waifu2x-art-no-denoise", "2x-esrgan-animevideo"]
QUICK = {"2x-conservative", "2x-waifu2x-art-no-denoise", "2x-esrgan-animevideo"}


@cache
def torch_fp32(name: str, kind: str = "anime") -> np.ndarray:
    upscaler = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0"))
    return upscaler.upscale(picture(kind, HEIGHT, WIDTH)[None])[0]


def _models() -> list:
    return [m if m in QUICK else pytest.param(m, marks=pytest.mark.slow) for m in MODELS]


@needs_vulkan
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", _models())
def test_vulkan_matches_torch_fp32(name, precision):
    if precision == "fp16" and not vulkan_devices()[0].fp16:
        pytest.skip(f"{vulkan_devices()[0].label} has no fp16")
    upscaler = make_upscaler(load_model(name), EngineSettings("vulkan:0", precision, "auto"))
    assert isinstance(upscaler, NcnnUpscaler) and upscaler.precision == precision
    mine = upscaler.upscale(picture("anime", HEIGHT, WIDTH)[None])[0]
    quality = psnr(mine, torch_fp32(name))
    assert quality >= MIN_DB[precision], f"{name} vulkan {precision}: {quality:.1f} dB"


@pytest.mark.parametrize("name", MODELS)
def test_ncnn_cpu_matches_torch_fp32(name):
    upscaler = make_upscaler(load_model(name), EngineSettings("cpu", "auto", "auto", engine="ncnn"))
    assert isinstance(upscaler, NcnnUpscaler) and upscaler.precision == "fp32"
    for kind in ("anime", "photo"):
        frames = np.stack([picture(kind, HEIGHT, WIDTH), picture(kind, HEIGHT, WIDTH, seed=2)])
        mine = upscaler.upscale(frames)
        quality = psnr(mine[0], torch_fp32(name, kind))
        assert quality >= MIN_DB["fp32"], f"{name} ncnn cpu on {kind}: {quality:.1f} dB"
        # Frame by frame: the batch does not change a frame.
        assert np.array_equal(mine[1], upscaler.upscale(frames[1:])[0])


@pytest.mark.parametrize("name", ["2x-esrgan-animevideo", "2x-waifu2x-art-no-denoise"])
def test_local_models_tile_exactly_on_ncnn(name):
    """Receptive-field tiles through the ncnn graph against the whole frame: the same pixels
    (>= 80 dB, at most one level), at tile 64 on a 100x76 frame (four tiles)."""
    frame = picture("anime", 76, 100)[None]
    whole = make_upscaler(load_model(name), EngineSettings("cpu", "fp32", "0", engine="ncnn")).upscale(frame)
    tiler = make_upscaler(load_model(name), EngineSettings("cpu", "fp32", "64", engine="ncnn"))
    tiled = tiler.upscale(frame)
    assert isinstance(tiler, NcnnUpscaler) and tiler.tiles_run == 4  # else tiled equals whole trivially
    assert psnr(tiled, whole) >= 80
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_16_bit_and_alpha_go_through_the_torch_engines_own_conversion():
    rgba = np.concatenate([picture("anime", HEIGHT, WIDTH), picture("photo", HEIGHT, WIDTH)[..., :1]], axis=2)
    deep = rgba.astype(np.uint16) * 257
    name = "2x-esrgan-animevideo"
    ncnn_cpu = make_upscaler(load_model(name), EngineSettings("cpu", "fp32", "0", engine="ncnn"))
    torch_cpu = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0"))
    for frames in (rgba[None], deep[None]):
        mine, theirs = ncnn_cpu.upscale(frames), torch_cpu.upscale(frames)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert psnr(mine, theirs) >= 60


def test_auto_on_a_bf16_cpu_measures_fp32_too_and_runs_the_precision_it_chose(tmp_path, monkeypatch, capsys):
    """bf16 is the faster on some CPUs with AVX-512 BF16 and the slower on others (docs/engine.md):
    where `--precision auto` gives the model bf16, `--engine auto` measures each engine at fp32 too
    (ncnn at fp32 only), and the engine it makes runs at the precision that won."""
    bf16_for_auto(monkeypatch)
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    monkeypatch.delenv("REMASTER_ENGINE")
    loaded = load_model("2x-esrgan-animevideo")  # auto_cpu_bf16: bf16 under --precision auto
    settings = EngineSettings("cpu", "auto", "0")
    engines = ["openvino", "torch"] if openvino_available() else ["torch"]
    assert [c.label for c in cpu_candidates(loaded, settings)] == [
        *(f"{e} bf16" for e in engines), *(f"{e} fp32" for e in engines), "ncnn fp32"
    ]
    asked_bf16 = EngineSettings("cpu", "bf16", "0")
    assert [c.label for c in cpu_candidates(loaded, asked_bf16)] == [f"{e} bf16" for e in engines]
    choice = choose_cpu_engine(loaded, settings, side=32)
    said = capsys.readouterr().err
    assert all(f"{c.label} " in said for c in cpu_candidates(loaded, settings)), said
    upscaler = make_upscaler(loaded, settings)  # the cached choice
    assert upscaler.precision == choice.precision
    assert type(upscaler).__name__ == {"torch": "TorchUpscaler", "ncnn": "NcnnUpscaler"}.get(
        choice.engine, "OpenVinoUpscaler"
    )


def test_auto_measures_once_per_model_and_cpu_and_caches_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    monkeypatch.delenv("REMASTER_ENGINE")  # the suite's torch (conftest.py)
    loaded = load_model("2x-esrgan-animevideo")
    settings = EngineSettings("cpu", "fp32", "0")
    statuses: list[str] = []
    first = choose_cpu_engine(loaded, settings, side=32, status=statuses.append)
    assert statuses == ["measuring engines (once for this model on this CPU)"]  # the live line says so meanwhile
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("remaster: measured the CPU engines once for 2x-esrgan-animevideo")
    entries = __import__("json").loads(cache_path().read_text())
    assert cache_path() == tmp_path / "cache" / "engines.json"
    entry = entries[cache_key(loaded, len(os.sched_getaffinity(0)), "fp32")]
    # OpenVINO is a candidate where remaster[openvino] is installed; fp32 asked for, fp32 only.
    measured = {"torch fp32", "ncnn fp32"} | ({"openvino fp32"} if openvino_available() else set())
    assert f"{entry['engine']} {entry['precision']}" in measured and set(entry["seconds"]) == measured
    assert (first.engine, first.precision) == (entry["engine"], "fp32")
    # The second time: the cached choice, nothing measured, nothing said.
    again = make_upscaler(load_model("2x-esrgan-animevideo"), settings)
    assert isinstance(again, NcnnUpscaler) == (first.engine == "ncnn") and capsys.readouterr().err == ""
    assert choose_cpu_engine(loaded, settings, side=32, status=statuses.append) == first and len(statuses) == 1
    # $REMASTER_ENGINE decides for `auto`, and a wrong value is one line.
    monkeypatch.setenv("REMASTER_ENGINE", "ncnn")
    assert isinstance(make_upscaler(loaded, settings), NcnnUpscaler)
    monkeypatch.setenv("REMASTER_ENGINE", "onnx")
    wanted = r"^\$REMASTER_ENGINE: --engine 'onnx': want one of auto, torch, ncnn, openvino, tensorrt$"
    with pytest.raises(UsageError, match=wanted):
        make_upscaler(loaded, settings)


@pytest.mark.parametrize(("device", "precision"), [("cpu", "fp32"), pytest.param("vulkan", "fp16", marks=needs_vulkan)])
def test_se_models_tile_exactly_on_ncnn(device, precision, capsys):
    """An SE model in tiles (its graph cut at the SE means, whole-frame means fed back) against
    the whole graph: >= 80 dB and at most one level (issue 15), Vulkan in fp16 too; nothing said."""
    name = "2x-conservative"
    frame = picture("anime", 76, 100)[None]
    engine = "ncnn" if device == "cpu" else "auto"
    whole = make_upscaler(load_model(name), EngineSettings(device, precision, "0", engine=engine))
    tiled = make_upscaler(load_model(name), EngineSettings(device, precision, "64", engine=engine))
    a, b = whole.upscale(frame), tiled.upscale(frame)
    assert psnr(b, a) >= 80 and np.abs(b.astype(int) - a.astype(int)).max() <= 1
    assert tiled.net._stages is not None and whole.net._stages is None  # tiles ran the stages, whole the graph
    assert capsys.readouterr().err == ""
    reference = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0")).upscale(frame)
    assert psnr(b, reference) >= MIN_DB[precision]


def test_se_tile_states_spill_to_disk_with_the_same_pixels():
    """A state budget of 0 sends every tile state between SE stages to the spill file, as on the
    torch engine: memory bounded by the tile, not the frame, and the pixels unchanged."""
    frame = picture("anime", 76, 100)[None]
    settings = EngineSettings("cpu", "fp32", "64", engine="ncnn")
    in_memory = make_upscaler(load_model("2x-conservative"), settings)
    spilled = make_upscaler(load_model("2x-conservative"), dataclasses.replace(settings, state_memory=0))
    assert np.array_equal(spilled.upscale(frame), in_memory.upscale(frame))
    assert spilled.tiles_run == in_memory.tiles_run == 4  # 2 x 2 tiles of 64: the stages ran, with states
    assert spilled.kept_state_bytes == in_memory.kept_state_bytes > 0
    assert in_memory.spilled_state_bytes == 0
    # Every state of every stage went through the spill file: at least the most kept at once.
    assert spilled.spilled_state_bytes >= spilled.kept_state_bytes


def test_auto_device_passes_over_software_vulkan_devices():
    """llvmpipe is the CPU's own cores: `--device auto` must not take it over the CPU engines."""
    if __import__("torch").cuda.is_available() or any(not d.software for d in vulkan_devices()):
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto").type == "cpu"


def _remaster(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "remaster", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "in.png"
    write_image(path, picture("anime", HEIGHT, WIDTH))
    return path


@needs_vulkan
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--device", "vulkan:5"], "device vulkan:5: only 1 Vulkan device(s), vulkan:0 to vulkan:0"),
        (["--device", "vulkan", "--precision", "bf16"], "precision bf16: a Vulkan device runs fp32 or fp16"),
        (["--device", "vulkan", "--engine", "torch"], "--engine torch runs on cpu or cuda, not vulkan:0"),
        (["--device", "cpu", "--engine", "ncnn", "--precision", "bf16"], "the ncnn engine on a CPU runs fp32"),
        (["--engine", "onnx"], "--engine 'onnx': want one of auto, torch, ncnn"),
    ],
)
def test_device_errors_are_one_line_exit_2_nothing_written(png, tmp_path, capsys, options, message):
    if len(vulkan_devices()) != 1 and "vulkan:5" in options:
        pytest.skip("the message names this machine's one device")
    output = tmp_path / "out.png"
    assert main(["image", str(png), "-o", str(output), *options]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not output.exists()


def test_no_vulkan_driver_is_one_line_exit_2(png, tmp_path):
    """A Vulkan loader with no driver to load (what a machine without a GPU driver, or without
    mesa-vulkan-drivers, has): ncnn counts no device. In a child: this process has its devices."""
    output = tmp_path / "out.png"
    result = _remaster(
        "image", str(png), "-o", str(output), "--device", "vulkan", env={"VK_ICD_FILENAMES": "/none.json"}
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("remaster: error: device vulkan:0: no Vulkan device"), lines
    assert not output.exists()


def test_a_pytorch_checkpoint_on_ncnn_is_refused(tmp_path):
    import torch

    checkpoint = tmp_path / "compact.pth"
    torch.save(load_model("2x-esrgan-animevideo").module.state_dict(), checkpoint)
    with pytest.raises(Exception, match="the ncnn engine runs ncnn .param/.bin models") as caught:
        make_upscaler(load_model(str(checkpoint)), EngineSettings("cpu", "fp32", "0", engine="ncnn"))
    assert getattr(caught.value, "exit_code", None) == 2


@needs_vulkan
def test_image_command_on_vulkan(png, tmp_path):
    output = tmp_path / "out.png"
    result = _remaster("image", str(png), "-o", str(output), "--preset", "2x-esrgan-animevideo", "--device", "vulkan")
    assert result.returncode == 0, result.stderr
    assert "vulkan:0 fp16" in result.stdout + result.stderr or "vulkan:0 fp32" in result.stdout + result.stderr
    assert psnr(read_image(output), torch_fp32("2x-esrgan-animevideo")) >= 50


@needs_vulkan
def test_bench_lists_vulkan_devices_and_runs_on_one():
    result = _remaster(
        "bench", "--preset", "2x-esrgan-animevideo", "--size", "32x32", "--frames", "1", "--device", "vulkan"
    )
    assert result.returncode == 0, result.stderr
    assert f"Vulkan devices: {vulkan_devices()[0].label}" in " ".join(result.stdout.split())
    assert "fp32" in result.stdout


@needs_vulkan
def test_a_video_job_on_vulkan_gives_the_torch_engines_frames(tmp_path, capsys):
    """One short episode end to end on Vulkan (decode, ncnn, encode, mux), against the same job on
    the torch CPU engine: the decoded frames agree. x264 at --crf 0 (lossless), so that the
    encoder does not magnify the engines' few one-level differences: at the default crf its
    decisions diverge, 37 dB measured; at crf 0, 52 dB (the YUV round trip of 1-level differences)."""
    import av

    from remaster.demo.samples import EpisodeSpec, make_episode

    episode = make_episode(
        tmp_path / "ep.mkv", EpisodeSpec(width=48, height=32, seconds=1.0, gop_seconds=0.25, cover_image=False)
    )
    # Half a second (12 frames, two segments): llvmpipe takes about a second a frame on two busy cores.
    options = ["--segment-seconds", "0.25", "--end", "0.5", "--codec", "x264", "--crf", "0"]
    options += ["--preset", "2x-esrgan-animevideo", "--quiet"]
    on_vulkan, on_torch = tmp_path / "vulkan.mkv", tmp_path / "torch.mkv"
    assert main([str(episode), "-o", str(on_vulkan), *options, "--device", "vulkan", "--precision", "fp32"]) == 0
    assert main([str(episode), "-o", str(on_torch), *options, "--device", "cpu", "--engine", "torch"]) == 0

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]

    a, b = frames(on_vulkan), frames(on_torch)
    assert len(a) == len(b) == 12 and a[0].shape == (64, 96, 3)
    worst = min(psnr(x, y) for x, y in zip(a, b, strict=True))
    assert worst >= 45, f"{worst:.1f} dB"


# A child that runs out of device memory for real: llvmpipe's device memory is host memory, so an
# address-space limit (RLIMIT_AS) set after the warm-up makes vkAllocateMemory fail on a frame
# whose whole-frame blobs need more than the headroom. Measured: a 160x160 frame of
# 2x-esrgan-animevideo fails whole with 40 MiB of headroom and runs in tiles of 80.
OUT_OF_MEMORY_CHILD = """
import resource, sys
import numpy as np
from remaster.engines.choice import make_upscaler
from remaster.engines.settings import EngineSettings
from remaster.models.loader import load_model
from remaster.media.testcard import anime_frame

upscaler = make_upscaler(load_model("2x-esrgan-animevideo"), EngineSettings("vulkan", "fp32", "auto"))
upscaler.upscale(anime_frame(32, 32)[None])  # the device's pipelines made before the limit
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + (40 << 20), resource.RLIM_INFINITY))
np.save(sys.argv[1], upscaler.upscale(anime_frame(160, 160)[None])[0])
"""


@needs_vulkan
def test_out_of_device_memory_retries_with_smaller_tiles_and_says_so(tmp_path):
    from remaster.media.testcard import anime_frame

    script, result_file = tmp_path / "child.py", tmp_path / "out.npy"
    script.write_text(OUT_OF_MEMORY_CHILD)
    result = subprocess.run([sys.executable, str(script), str(result_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("remaster:")]
    assert said == ["remaster: vulkan:0: out of memory on a 180x180 input; retrying with tile 80"], result.stderr
    reference = TorchUpscaler(load_model("2x-esrgan-animevideo"), EngineSettings("cpu", "fp32", "0"))
    assert psnr(np.load(result_file), reference.upscale(anime_frame(160, 160)[None])[0]) >= 60


def test_the_plan_resolves_device_and_precision_for_the_ncnn_engine():
    """The video plan fixes one device and precision for every segment: ncnn on a CPU is fp32
    (never `auto`'s bf16); Vulkan (fp16 where the device has it) in the test below."""
    from remaster.engines.device import cpu_bf16_pays
    from remaster.video.plan import resolve_engine

    def resolved(device: str, engine: str) -> tuple[str, str]:
        settings = resolve_engine(EngineSettings(device, "auto", engine=engine), "2x-conservative", None)
        return settings.device, settings.precision

    assert resolved("cpu", "ncnn") == ("cpu", "fp32")
    assert resolved("cpu", "torch") == ("cpu", "bf16" if cpu_bf16_pays() else "fp32")


@needs_vulkan
def test_the_plan_resolves_a_vulkan_device_and_its_precision():
    from remaster.video.plan import resolve_engine

    settings = resolve_engine(EngineSettings("vulkan", "auto", engine="auto"), "2x-conservative", None)
    assert (settings.device, settings.precision) == ("vulkan:0", "fp16" if vulkan_devices()[0].fp16 else "fp32")


@needs_vulkan
def test_vulkan_tile_auto_plans_with_the_devices_memory_budget():
    """`--tile auto` on Vulkan: whole frames where the activations fit half the device's budget
    (llvmpipe: 1 GiB), tiles where they do not (a 1080p frame of the 4x model: 1800 values a
    pixel, 7.5 GB in fp16)."""
    upscaler = make_upscaler(load_model("4x-conservative"), EngineSettings("vulkan", "auto", "auto"))
    assert upscaler.tile_for(48, 64, 1) == 0
    tile = upscaler.tile_for(1080, 1920, 1)
    assert 64 <= tile < 1080 and tile % 4 == 0
    assert 1080 * 1920 * 1800 * 2 > vulkan_devices()[0].memory / 2

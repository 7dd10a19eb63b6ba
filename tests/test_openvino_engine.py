"""The openvino engine: exported graphs against the torch engine, exact tiles, the graph cache, errors.

Exports take seconds each (the dynamo exporter): the graphs are cached for the whole test session
in one folder, and the wide sweeps are marked slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import PICTURES, picture, psnr

from remaster.engines.graph.cache import graph_dir
from remaster.engines.openvino_engine.runtime import import_openvino
from remaster.engines.openvino_engine.upscaler import OpenVinoUpscaler
from remaster.engines.settings import EngineSettings
from remaster.engines.torch_engine.upscaler import TorchUpscaler
from remaster.models.loader import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def graph_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("remaster-home")


@pytest.fixture(autouse=True)
def _graph_cache(graph_home, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(graph_home))


def rgb(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels[None]).permute(0, 3, 1, 2).float() / 255


def float_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def openvino(name: str, tile: str = "0", precision: str = "fp32") -> OpenVinoUpscaler:
    return OpenVinoUpscaler(load_model(name), EngineSettings("cpu", precision, tile, engine="openvino"))


def against_torch(name: str, sizes) -> None:
    torch_engine = TorchUpscaler(load_model(name), EngineSettings("cpu", "fp32", "0"))
    graph_engine = openvino(name)
    for height, width in sizes:
        x = rgb(picture("anime", height, width))
        want, got = torch_engine.upscale_rgb(x), graph_engine.upscale_rgb(x)
        assert got.shape == want.shape
        db = float_db(got, want)
        assert db >= 80, f"{name} {width}x{height}: {db:.1f} dB against torch"


# Odd and even sizes: the padding's rounding up and the crop differ.
SIZES = [(29, 37), (32, 40)]


@pytest.mark.parametrize("name", ["2x-conservative", "2x-esrgan-animevideo"])
def test_whole_frame_equals_torch(name):
    against_torch(name, SIZES)


# One model of each architecture and variant in the suite (RRDBNet: anime 6B, the smaller); the rest of
# the packaged models in the acceptance sweep (`pytest -m sweep`: each export takes minutes on two cores).
ALL_PACKAGED = [
    pytest.param("3x-conservative", marks=pytest.mark.sweep),
    "4x-conservative",
    "2x-pro-conservative",
    pytest.param("3x-pro-denoise3x", marks=pytest.mark.sweep),
    "2x-nose-no-denoise",
    "1x-waifu2x-cunet-denoise1x",
    pytest.param("2x-waifu2x-cunet-no-denoise", marks=pytest.mark.sweep),
    "2x-waifu2x-art-no-denoise",
    pytest.param("2x-waifu2x-photo-denoise1x", marks=pytest.mark.sweep),
    pytest.param("3x-esrgan-animevideo", marks=pytest.mark.sweep),
    pytest.param("4x-esrgan-animevideo", marks=pytest.mark.sweep),
    "4x-esrgan-anime6b",
    pytest.param("4x-esrgan-plus", marks=pytest.mark.sweep),
]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_PACKAGED)
def test_every_architecture_equals_torch(name):
    against_torch(name, SIZES)


def test_residual_on_a_view_needs_the_dynamo_exporter(tmp_path):
    """Why the engine exports through dynamo: the TorchScript exporter drops Compact's in-place
    residual (each input pixel added to its output block through a view), 4-7 dB against torch."""
    ov = import_openvino()

    network = load_model("2x-esrgan-animevideo").module.eval()
    x = rgb(picture("anime", 24, 32))
    with torch.inference_mode():
        want = network(x.clone())
    path = tmp_path / "torchscript.onnx"
    torch.onnx.export(network, (x.clone(),), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    got = torch.from_numpy(ov.Core().compile_model(str(path), "CPU")(x.numpy())[0])
    assert float_db(got, want) < 20
    assert float_db(openvino("2x-esrgan-animevideo").network(x.clone()), want) == float("inf")  # same module
    assert float_db(openvino("2x-esrgan-animevideo")._run_body(x), want) >= 80


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "height", "width", "tile"),
    [
        # 136 x 200 in tiles of 128: tiles of two shapes each way (a stage graph per shape).
        ("2x-conservative", 136, 200, "128"),
        # 128 x 192: one tile shape at 64 (64 x 64) and at 128 (128 x 96), so that each model exports
        # five stage graphs per tile side, not twenty: exports, not the frames, take the time here.
        # The suite keeps one tile side of each kind of tiler; the acceptance sweep has both.
        pytest.param("2x-conservative", 128, 192, "64", marks=pytest.mark.sweep),
        *(
            pytest.param(name, 128, 192, tile, marks=pytest.mark.sweep)
            for name in ("3x-conservative", "4x-conservative", "2x-waifu2x-cunet-no-denoise")
            for tile in ("64", "128")
        ),
        ("4x-esrgan-animevideo", 128, 192, "64"),
        pytest.param("4x-esrgan-animevideo", 128, 192, "128", marks=pytest.mark.sweep),
    ],
)
def test_tiles_equal_the_whole_frame(name, height, width, tile):
    x = rgb(picture("anime", height, width))
    whole = openvino(name).upscale_rgb(x)
    tiled_engine = openvino(name, tile)
    tiled = tiled_engine.upscale_rgb(x)
    db = float_db(tiled, whole)
    assert db >= 80, f"{name} tile {tile}: {db:.1f} dB against untiled"
    assert tiled_engine.tiles_run > 1, "the frame ran in tiles"
    if name != "4x-esrgan-animevideo":
        assert any(part.startswith("stage") for part, _ in tiled_engine.graphs), "tiles ran the stage graphs"


@pytest.mark.slow
@pytest.mark.sweep
def test_se_tiles_run_stage_graphs_with_whole_frame_gates():
    """One tile shape (a 128x72 frame in tiles of 64 x 36): the stage graphs, equal to untiled."""
    x = rgb(picture("anime", 72, 128))
    whole = openvino("2x-conservative").upscale_rgb(x)
    tiled_engine = openvino("2x-conservative", "64")
    tiled = tiled_engine.upscale_rgb(x)
    assert sorted({part for part, _ in tiled_engine.graphs}) == [f"stage{i}" for i in range(5)]
    assert float_db(tiled, whole) >= 80


def test_a_damaged_cache_entry_is_exported_again(capfd):
    name = "2x-waifu2x-art-no-denoise"
    x = rgb(picture("anime", 30, 34))
    want = openvino(name).upscale_rgb(x)
    capfd.readouterr()
    entries = list(graph_dir().glob("*.onnx"))
    # Damage every cached graph's bytes in the middle (the weights), as a bad disk would.
    for path in entries:
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))
    engine = openvino(name)
    got = engine.upscale_rgb(x)
    err = capfd.readouterr().err
    notes = [line for line in err.splitlines() if "damaged" in line]
    assert notes and all(line.startswith("remaster: cached graph ") for line in notes), err
    assert "Traceback" not in err
    assert engine.exported == 1
    assert float_db(got, want) == float("inf")
    # Whole again: the next engine takes it from the cache without a word.
    again = openvino(name)
    again.upscale_rgb(x)
    assert again.exported == 0 and "damaged" not in capfd.readouterr().err


def test_bf16_keeps_close_to_fp32():
    if "BF16" not in __import__("openvino").Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16")
    x = rgb(picture("anime", 32, 40))
    fp32 = openvino("2x-conservative").upscale_rgb(x)
    bf16 = openvino("2x-conservative", precision="bf16").upscale_rgb(x)
    assert float_db(bf16, fp32) >= 50


def test_bf16_keeps_the_float32_layers_of_a_wrapped_network(tmp_path):
    """UpcunetBody and UpcunetStage export the network under their `model.` prefix: the float32 layers
    are found by their names under it too (before, none was marked and bf16 lowered them all)."""
    from remaster.architectures.realcugan.export import UpcunetBody
    from remaster.engines.graph.export import export_onnx, float32_weights
    from remaster.engines.openvino_engine.runtime import core, keep_float32

    network = load_model("2x-conservative").module.float().eval()
    padded = network.pad(rgb(picture("anime", 24, 24)))
    export_onnx(UpcunetBody(network), [padded], ["padded"], ["out"], tmp_path / "body.onnx")
    kept = float32_weights(network)
    convolutions = {name.rsplit(".", 1)[0] for name in kept}  # 4 FLOAT32_LAYERS (2x: no conv_final), 8 SE
    assert len(convolutions) == 12
    assert keep_float32(core().read_model(str(tmp_path / "body.onnx")), kept) >= len(convolutions)


def remaster(*args: str, env_extra: dict | None = None, block_openvino: bool = False):
    code = "import sys; from remaster.cli import main; sys.exit(main())"
    if block_openvino:
        code = "import sys; sys.modules['openvino'] = None; " + code
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)


def test_missing_openvino_is_one_line_naming_the_extra(tmp_path):
    source = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(picture("anime", 32, 32)).save(source)
    result = remaster(
        "image", str(source), "-o", str(tmp_path / "out.png"), "--engine", "openvino", block_openvino=True
    )
    assert result.returncode == 2, result.stderr
    assert "remaster[openvino]" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("device", ["xpu:7", "cuda"])
def test_an_unsupported_device_is_one_line(tmp_path, device):
    source = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(picture("anime", 32, 32)).save(source)
    out = tmp_path / "out.png"
    result = remaster("image", str(source), "-o", str(out), "--engine", "openvino", "--device", device)
    assert result.returncode == 2, result.stderr
    assert f"device {device}" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


FIDELITY = [
    "2x-conservative",
    pytest.param("2x-waifu2x-art-no-denoise", marks=pytest.mark.sweep),
    pytest.param("1x-waifu2x-cunet-denoise1x", marks=pytest.mark.sweep),
    pytest.param("2x-esrgan-animevideo", marks=pytest.mark.sweep),
]


@pytest.mark.slow
@pytest.mark.parametrize("name", FIDELITY)
def test_remaster_image_matches_the_reference_runner(tmp_path, name):
    """`remaster image --engine openvino` against the ncnn graphs run by the ncnn wheel (the reference
    runners' own graphs and code path, tests/test_ncnn_reference.py): >= 60 dB at fp32."""
    pytest.importorskip("ncnn", reason="ncnn wheel not installed")
    from PIL import Image

    from remaster.engines.ncnn_engine.reference import ncnn_net, ncnn_upscale
    from remaster.models.catalog import packaged_models

    packaged = packaged_models()[name]
    kind, height, width = PICTURES[0]
    pixels = picture(kind, height, width)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    args = ["image", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", name]
    result = remaster(*args, "--engine", "openvino", "--precision", "fp32", "--tile", "0")
    assert result.returncode == 0, result.stderr
    ours = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    theirs = ncnn_upscale(packaged, ncnn_net(packaged.param, threads=1), pixels)
    assert psnr(ours, theirs) >= 60


@pytest.mark.slow
def test_a_video_job_on_openvino_muxes_and_ends(tmp_path):
    """The whole video job on OpenVINO, in a child as a user runs it: its threads are alive when the
    ffmpeg mux is started. A `preexec_fn` run between fork and exec once hung there for good (the
    README's demo on a fresh install); the mux's ffmpeg is now started without Python in the child."""
    from remaster.demo.samples import EpisodeSpec, make_episode

    source = make_episode(tmp_path / "ep.mkv", EpisodeSpec(width=64, height=48, seconds=1.0, gop_seconds=0.5))
    out = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "remaster", str(source), "-o", str(out), "--engine", "openvino",
               "--codec", "x264", "--preset", "2x-waifu2x-art-no-denoise", "--quiet"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    with av.open(str(source)) as original, av.open(str(out)) as container:
        assert len(container.streams) == len(original.streams) and container.streams.video[0].width == 128


TELEMETRY_CHILD = """
import multiprocessing, sys
{imports}
print(len(multiprocessing.active_children()), sys.modules.get("openvino_telemetry") is not None)
"""


def test_openvino_is_imported_without_its_telemetry():
    """OpenVINO's import sends a usage event from a forked process (openvino_telemetry); through
    remaster the package is never loaded. The control, a plain `import openvino`, loads it (with
    CI=true, which its opt-in check takes for a CI job, so that even the control sends nothing)."""

    def child(imports: str) -> str:
        code = TELEMETRY_CHILD.format(imports=imports)
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "CI": "true"}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()

    assert child("import openvino") == ["0", "True"]
    through_remaster = "from remaster.engines.openvino_engine.runtime import import_openvino; import_openvino()"
    assert child(through_remaster) == ["0", "False"]

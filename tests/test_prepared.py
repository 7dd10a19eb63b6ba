"""Prepared frame graphs: a picture size that has run through OpenVINO runs again without PyTorch,
to the same bytes, and only where the record still holds (engines/openvino_engine/prepared.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import picture

from remaster.engines.graph.cache import graph_dir
from remaster.engines.openvino_engine.prepared import (
    PreparedUpscaler,
    cache_path,
    prepared_upscaler,
    recall,
    run_key,
)
from remaster.engines.openvino_engine.upscaler import OpenVinoUpscaler
from remaster.engines.settings import EngineSettings
from remaster.media.imagefiles import write_image
from remaster.models.loader import load_model

pytest.importorskip("openvino")

# upconv_7 (a local network: the cheapest export) and Real-CUGAN (SE gates, reflect padding).
LOCAL, SE = "2x-waifu2x-art-no-denoise", "2x-conservative"
OPENVINO = EngineSettings("cpu", "fp32", engine="openvino")

# Runs the CLI in a fresh interpreter and says on its last line whether PyTorch was imported.
_DRIVER = (
    "import sys; from remaster.cli import main; rc = main(sys.argv[1:]); print('torch' in sys.modules); sys.exit(rc)"
)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path / "home"))


def remaster_image(src: Path, dst: Path, *options: str) -> tuple[bool, str]:
    """`remaster image SRC -o DST --engine openvino --device cpu ...` in a child: (torch imported, stderr)."""
    args = ["image", str(src), "-o", str(dst), "--device", "cpu", "--engine", "openvino", *options]
    run = subprocess.run([sys.executable, "-c", _DRIVER, *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1] == "True", run.stderr


def test_a_size_that_ran_runs_again_without_torch_and_only_that(tmp_path):
    """The same bytes without PyTorch; another size, a damaged graph, a damaged record file: the
    full engine again, the same pictures, a damaged graph said in one line. (Other options: another
    key, `test_records_apply_to_packaged_models_on_the_cpu_only`.)"""
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    write_image(small, picture("anime", 40, 56))
    write_image(large, picture("anime", 48, 64))
    assert remaster_image(small, tmp_path / "a.png", "--preset", LOCAL)[0]
    imported, said = remaster_image(small, tmp_path / "b.png", "--preset", LOCAL)
    assert not imported and "cpu openvino fp32" in said
    assert remaster_image(large, tmp_path / "c.png", "--preset", LOCAL)[0]  # another size
    assert not remaster_image(large, tmp_path / "d.png", "--preset", LOCAL)[0]  # now recorded too

    for onnx in graph_dir().glob("*.onnx"):  # real damage: a byte of every graph file changed
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.write_bytes(bytes(data))
    imported, said = remaster_image(small, tmp_path / "e.png", "--preset", LOCAL)
    assert imported and "is damaged" in said and "Traceback" not in said
    assert not remaster_image(small, tmp_path / "f.png", "--preset", LOCAL)[0]  # exported and recorded again

    (key, sizes), = json.loads(cache_path().read_text()).items()
    cache_path().write_bytes(b'{"not": "records"')  # a damaged record file
    imported, said = remaster_image(small, tmp_path / "g.png", "--preset", LOCAL)
    assert imported and "Traceback" not in said
    assert len({(tmp_path / f"{name}.png").read_bytes() for name in "abefg"}) == 1
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "d.png").read_bytes()
    # A record that is not one (a precision remaster has not) is left out.
    cache_path().write_text(json.dumps({key: {"40x56": {**sizes["40x56"], "precision": "fp64"}}}))
    assert recall(key) == {}


def test_prepared_frames_equal_the_engine_s():
    """The same graph and the same conversion around it: the same bytes, alpha and 16-bit included."""
    engine = OpenVinoUpscaler(load_model(SE), OPENVINO)
    for channels in (3, 4):
        for dtype in (np.uint8, np.uint16):
            pixels = picture("anime", 36, 44).astype(dtype) * (257 if dtype == np.uint16 else 1)
            if channels == 4:
                alpha = np.linspace(0, np.iinfo(dtype).max, 36 * 44).reshape(36, 44, 1).astype(dtype)
                pixels = np.concatenate([pixels, alpha], axis=-1)
            want = engine.upscale(pixels[None])
            prepared = prepared_upscaler(engine.prepared(36, 44))
            assert isinstance(prepared, PreparedUpscaler)
            np.testing.assert_array_equal(prepared.upscale(pixels[None]), want)


def test_a_record_needs_the_memory_a_whole_frame_needs():
    engine = OpenVinoUpscaler(load_model(LOCAL), OPENVINO)
    engine.upscale(picture("anime", 40, 56)[None])
    record = engine.prepared(40, 56)
    assert record.whole_frame_bytes > 0 and prepared_upscaler(record) is not None
    assert prepared_upscaler(replace(record, whole_frame_bytes=1 << 60)) is None
    assert engine.prepared(48, 64) is None  # not run
    tiled = OpenVinoUpscaler(load_model(LOCAL), replace(OPENVINO, tile="0"))
    tiled.upscale(picture("anime", 40, 56)[None])
    assert tiled.prepared(40, 56).whole_frame_bytes == 0  # asked for whole frames: whatever is free


def test_records_apply_to_packaged_models_on_the_cpu_only(tmp_path):
    assert run_key(LOCAL, OPENVINO) is not None
    assert run_key(LOCAL, replace(OPENVINO, device="cuda")) is None
    assert run_key(LOCAL, replace(OPENVINO, compile=True)) is None
    assert run_key(str(tmp_path / "own.pth"), OPENVINO) is None
    keys = {run_key(LOCAL, replace(OPENVINO, precision=p)) for p in ("fp32", "bf16", "auto")}
    assert len(keys) == 3


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_host_conversion_equals_the_device_conversion(channels, dtype):
    """CPU engines convert pictures in numpy (engines/host_frames.py, shared with prepared runs),
    GPU engines in torch: both give the same bytes (compared here on the CPU, a tensor in)."""
    from remaster.engines.torch_engine.upscaler import TorchUpscaler

    engine = TorchUpscaler(load_model(LOCAL), EngineSettings("cpu", "fp32", "0"))
    pixels = np.concatenate([picture("anime", 30, 34)] * 2, axis=-1)[..., :channels].astype(dtype)
    pixels *= 257 if dtype == np.uint16 else 1
    through_numpy = engine.upscale(pixels[None])
    through_torch = engine.upscale(torch.from_numpy(pixels[None])).numpy()
    np.testing.assert_array_equal(through_numpy, through_torch)

"""`--compile`: torch.compile where it works, the plain network where it does not, said in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from remaster.cli import main
from remaster.media.imagefiles import read_image, write_image
from remaster.media.testcard import anime_frame

MODEL = ["--preset", "2x-esrgan-animevideo", "--device", "cpu", "--precision", "fp32", "--tile", "0"]
FAST = [*MODEL, "--engine", "torch"]


def test_a_compiler_that_fails_falls_back_to_the_plain_network_in_one_line(tmp_path):
    picture, plain, compiled = tmp_path / "in.png", tmp_path / "plain.png", tmp_path / "compiled.png"
    write_image(picture, anime_frame(40, 56, seed=3))
    assert main(["image", str(picture), "-o", str(plain), *FAST]) == 0
    # A real failure of torch.compile's CPU backend: Inductor finds no working C++ compiler.
    env = {**os.environ, "CXX": "/bin/false", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    run = subprocess.run(
        [sys.executable, "-m", "remaster", "image", str(picture), "-o", str(compiled), *FAST, "--compile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if line.startswith("remaster: --compile:")]
    assert len(said) == 1 and "torch.compile failed (" in said[0], run.stderr
    assert said[0].endswith("; running uncompiled")
    assert np.array_equal(read_image(compiled), read_image(plain))


@pytest.mark.slow
def test_a_working_compiler_gives_the_same_picture_and_says_its_cost_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # not the user's cache
    # Two pictures of one size in one run: the cost is said at the first and never again.
    pictures = [tmp_path / "a.png", tmp_path / "b.png"]
    for seed, picture in enumerate(pictures, 3):
        write_image(picture, anime_frame(40, 56, seed=seed))
    plain, compiled = tmp_path / "plain", tmp_path / "compiled"
    assert main(["image", *map(str, pictures), "-o", str(plain), *FAST]) == 0
    capsys.readouterr()
    assert main(["image", *map(str, pictures), "-o", str(compiled), *FAST, "--compile"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("remaster: --compile:")]
    assert len(said) == 1 and "the first frame, compiled, took" in said[0], said
    outputs = sorted(p.name for p in compiled.iterdir())
    assert len(outputs) == 2 and outputs == sorted(p.name for p in plain.iterdir())
    for name in outputs:
        # Inductor fuses and reorders float arithmetic: the same levels, give or take one.
        a, b = read_image(compiled / name).astype(int), read_image(plain / name).astype(int)
        assert np.abs(a - b).max() <= 1, name


def test_compile_with_the_ncnn_engine_is_refused_in_one_line(tmp_path, capsys):
    pytest.importorskip("ncnn", reason="the ncnn wheel is not installed")
    picture = tmp_path / "in.png"
    write_image(picture, anime_frame(40, 56, seed=3))
    assert main(["image", str(picture), "-o", str(tmp_path / "out.png"), *MODEL, "--engine", "ncnn", "--compile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the ncnn engine has its own kernels" in err[0], err
    assert not (tmp_path / "out.png").exists()

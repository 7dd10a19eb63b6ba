"""remaster without any optional package: no onnx, openvino, tensorrt, ncnn, ray or spandrel.
OpenVINO, onnx and onnxscript are default dependencies, but an install made with --no-deps (as on a
GPU box) goes without them. They are hidden from a child interpreter by a meta-path finder that
refuses them, as a machine without them would; the video and image commands must still run, with
`--engine auto` choosing among what is there."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np

EXTRAS = ("onnx", "onnxscript", "onnxruntime", "openvino", "tensorrt", "ncnn", "ray", "spandrel")

# Runs remaster's CLI in a child where importing any extra fails as it would where it is not installed.
WITHOUT_EXTRAS = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from remaster.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_extras(*args: str, home) -> subprocess.CompletedProcess:
    env = {"REMASTER_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_the_finder_hides_an_extra(tmp_path):
    """The control: a command that needs an extra fails as without it, naming the extra."""
    picture = tmp_path / "frame.png"
    _write_png(picture)
    args = ("image", str(picture), "-o", str(tmp_path / "o.png"), "--engine", "openvino")
    run = run_without_extras(*args, home=tmp_path)
    assert run.returncode == 2 and "remaster[openvino]" in run.stderr, run.stderr


def _write_png(path) -> None:
    from remaster.media.imagefiles import write_image

    rng = np.random.default_rng(0)
    write_image(path, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


def test_image_and_video_run_with_auto_and_no_extras(tmp_path):
    picture = tmp_path / "frame.png"
    _write_png(picture)
    run = run_without_extras("image", str(picture), "-o", str(tmp_path / "o.png"), home=tmp_path)
    assert run.returncode == 0, run.stderr
    clip = tmp_path / "clip.mkv"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((40, 48, 3), 40 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    run = run_without_extras(str(clip), "-o", str(tmp_path / "out.mkv"), "--codec", "x264", home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.mkv").stat().st_size > 0

"""benchmarks/gpu.py runs its own code on a CPU, small (the GPU run is the same code, larger)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


def test_the_gpu_benchmark_smoke_run_writes_its_table_and_json(tmp_path):
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "192x144", "--frames", "2", "--smoke"]
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OUT": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "model only, 192x144 input, on cpu" in run.stdout and "whole command, 2x-conservative" in run.stdout
    result = json.loads((tmp_path / "gpu.json").read_text())
    rows = [(r["batch"], r["precision"], r["switch"]) for r in result["model_only"]]
    assert rows == [(1, "fp32", "none"), (2, "fp32", "none"), (1, "fp32", "cudnn.benchmark")]
    assert all(r["fps"] > 0 and r["note"] == "" for r in result["model_only"])
    assert [r["codec"] for r in result["whole_command"]] == ["x264", "x265", "svtav1"]
    assert all(r["fps"] > 0 and r["of_model_only"] > 0 for r in result["whole_command"])
    assert all(set(r["busy"]) == {"decode", "model", "encode"} for r in result["whole_command"])
    assert all(r["bottleneck"] in r["busy"] for r in result["whole_command"])
    # The tensorrt rows (benchmarks/gpu_tensorrt.py): on a CPU one row per preset saying why not.
    assert [(r["preset"], r["fps"]) for r in result["tensorrt"]] == [("2x-conservative", None)]
    assert "remaster[tensorrt]" in result["tensorrt"][0]["note"] and "tensorrt engine, fp16" in run.stdout

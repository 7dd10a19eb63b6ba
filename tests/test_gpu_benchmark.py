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
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "128x96", "--frames", "2", "--smoke"]
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OUT": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "model only, 128x96 input from host memory, on cpu" in run.stdout
    assert "fp16 against true fp32 (TF32 off)" in run.stdout and "whole command, 2x-conservative" in run.stdout
    for column in ("tiles", "copies/batch", "state moves", "peak reserved MiB", "peak allocated MiB", "note"):
        assert column in run.stdout
    result = json.loads((tmp_path / "gpu.json").read_text())
    rows = [(r["batch"], r["precision"], r["switch"]) for r in result["model_only"]]
    assert rows == [(1, "fp32", "none"), (2, "fp32", "none"), (1, "fp32", "cudnn.benchmark")]
    assert all(r["fps"] > 0 and r["note"] == "" and r["tiles"] == 1 for r in result["model_only"])
    assert all(r["copies_per_batch"] == 0 and r["state_moves"] == 0 for r in result["model_only"])  # all on the CPU
    command_rows = result["whole_command"]
    assert [(r["codec"], r["reuse"]) for r in command_rows] == [
        ("x264", "off"), ("x264", "auto")
    ]
    base = result["model_only_for_command"][0]
    assert all(r["batch"] == base["batch"] for r in command_rows)
    assert all(r["fps"] > 0 and abs(r["of_model_only"] - r["fps"] / base["fps"]) < 1e-9 for r in command_rows)
    assert all(set(r["busy"]) == {"decode", "model", "encode"} for r in command_rows)
    assert all(r["bottleneck"] in r["busy"] for r in command_rows)
    # The tensorrt rows (benchmarks/gpu_tensorrt.py): on a CPU one row per preset saying why not.
    assert [(r["preset"], r["fps"]) for r in result["tensorrt"]] == [("2x-conservative", None)]
    assert "remaster[tensorrt]" in result["tensorrt"][0]["note"] and "tensorrt engine, fp16" in run.stdout

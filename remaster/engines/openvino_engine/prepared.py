"""Whole frames that have run once, run again without PyTorch.

Importing PyTorch takes 1.2-1.7 s on two cores, most of what `remaster image` spends before its
first picture. Where the openvino engine has run whole frames of one size for a packaged model,
through its frame graph (engines/graph/frame.py), the image command records how: the graph's cache
key, the device and precision it was compiled for, the layers kept in float32, and the free memory
below which the engine would have tiled instead. The record's key is everything that decided
that run: the model and its files' checksums, the engine options as given, `$REMASTER_ENGINE`,
the CPU, its cores, the GPU device files (for `--device auto`) and every version involved.

A run with the same key finds the record and runs frames of that size with OpenVINO and numpy
alone (`PreparedUpscaler`): the same graph compiled the same way, and the same conversion around
it (engines/host_frames.py), so the same bytes as the full engine. Another size, a graph no
longer whole in the cache, or too little free memory for a whole frame: the full engine runs,
and records again. The records live in one JSON file in the user cache; a damaged file is no
record at all.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

import remaster
from remaster.core.machine import cpu_name, cpu_threads, gpu_device_files, host_available_memory, installed_version
from remaster.core.outputs import read_json_cache, write_json_cache
from remaster.core.precision import Precision
from remaster.core.resources import cache_dir
from remaster.engines.graph.cache import FRAME_INPUT, FRAME_OUTPUT, GraphKey, graph_entry
from remaster.engines.host_frames import from_network, to_network
from remaster.engines.kinds import ENGINE_ENV
from remaster.engines.openvino_engine.runtime import CompiledGraph, CompileTarget
from remaster.engines.settings import EngineSettings
from remaster.models.catalog import packaged_models, read_manifest

CACHE_NAME = "prepared.json"
# What else a run's choices depend on: `--engine auto` measures torch, ncnn and openvino.
_VERSIONED = ("openvino", "torch", "onnx", "onnxscript", "ncnn")


@dataclass(frozen=True)
class PreparedGraph:
    """How whole frames of one size ran: enough to run them again without PyTorch."""

    graph: GraphKey  # the frame graph in the graph cache
    device: str  # OpenVINO's device name
    precision: Precision
    float32_weights: tuple[str, ...]  # what compiling at bf16/f16 keeps in float32
    model: str  # the model's name, for messages
    # Free host memory below which the engine would have tiled these frames (`whole_frame_bytes`).
    whole_frame_bytes: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: dict) -> PreparedGraph:
        """A record as `to_json` wrote it; KeyError, TypeError or ValueError where it is not one."""
        if set(entry) != {f.name for f in fields(cls)}:
            raise KeyError("fields")
        graph = GraphKey(**entry["graph"])
        values = {**entry, "graph": graph, "precision": Precision(entry["precision"])}
        values["float32_weights"] = tuple(entry["float32_weights"])
        return cls(**values)


def run_key(model: str, settings: EngineSettings) -> str | None:
    """The key of a packaged model's records under these options on this machine (the module
    docstring says what is in it); None where no record applies: a model that is not packaged,
    a device other than the CPU or `auto`, `--compile` (the torch engine)."""
    packaged = packaged_models().get(model)
    if packaged is None or settings.device not in ("auto", "cpu") or settings.compile:
        return None
    manifest = read_manifest()
    files = " ".join(manifest.get(p.relative_to(packaged.package_root).as_posix(), "?") for p in packaged.files)
    gpus = ",".join(gpu_device_files()) if settings.device == "auto" else "-"
    versions = " ".join(f"{name} {installed_version(name)}" for name in _VERSIONED)
    return (
        f"{model} {files} | engine {settings.engine} ${ENGINE_ENV}={os.environ.get(ENGINE_ENV, '')}"
        f" | precision {settings.precision} | device {settings.device} ({gpus}) | tile {settings.tile}"
        f" | {cpu_name()} | {cpu_threads()} threads | remaster {remaster.__version__} {versions}"
    )


def cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def _size(height: int, width: int) -> str:
    return f"{height}x{width}"


def remember(key: str, height: int, width: int, prepared: PreparedGraph) -> None:
    """Record how whole HxW frames ran under `key` (`run_key`)."""
    entries = read_json_cache(cache_path())
    sizes = entries.setdefault(key, {})
    if sizes.get(_size(height, width)) != prepared.to_json():
        sizes[_size(height, width)] = prepared.to_json()
        write_json_cache(cache_path(), entries)


def recall(key: str) -> dict[tuple[int, int], PreparedGraph]:
    """The frame sizes recorded under `key` (`run_key`), and how they ran."""
    found = {}
    for size, entry in read_json_cache(cache_path()).get(key, {}).items():
        try:
            height, width = (int(side) for side in size.split("x"))
            found[height, width] = PreparedGraph.from_json(entry)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # not a record: left out, and written over by the next run of that size
    return found


def prepared_upscaler(prepared: PreparedGraph) -> PreparedUpscaler | None:
    """An upscaler for the recorded frames where the record holds now: its graph whole in the
    graph cache, and free memory enough that the engine would run such a frame whole."""
    if host_available_memory() < prepared.whole_frame_bytes:
        return None
    path = graph_entry(prepared.graph)
    return None if path is None else PreparedUpscaler(prepared, path)


class PreparedUpscaler:
    """Whole frames of one size through a recorded frame graph, in host memory: what
    `Upscaler.upscale` gives for them, without PyTorch."""

    def __init__(self, prepared: PreparedGraph, path: Path):
        self.prepared = prepared
        target = CompileTarget(prepared.device, prepared.precision)
        self.compiled = CompiledGraph(path, target, prepared.float32_weights)

    @property
    def name(self) -> str:
        return self.prepared.model

    @property
    def precision(self) -> str:
        return self.prepared.precision

    @property
    def where(self) -> str:
        return f"{self.prepared.device.lower()} openvino"

    def upscale(self, frames: np.ndarray) -> np.ndarray:
        """N x H x W x C (C = 3 or 4) uint8 or uint16 -> N x sH x sW x C, same type and depth."""
        rgb = to_network(frames)
        outputs = [self.compiled.run({FRAME_INPUT: frame[None]})[FRAME_OUTPUT] for frame in rgb]
        return from_network(np.concatenate(outputs), frames)

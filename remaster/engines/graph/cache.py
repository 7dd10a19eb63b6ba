"""Exported graphs on disk: one ONNX file per network part and input shape, in the user cache.

An entry is `<key digest>.onnx` beside `<key digest>.json`, which holds the key in words and the
ONNX file's sha256. The key is everything the file depends on: the weights' sha256, the part (the
whole body, or an SE stage), its inputs' names and shapes (the frame size and the batch), the
graph's precision and the exporter's versions; a runtime (OpenVINO now, TensorRT later) reads the
same file and compiles it for itself. Both files are written through `atomic_output`, the ONNX file
first: an entry whose `.json` is missing, unreadable, or names other bytes than the `.onnx` holds
(a crash between the two, a damaged disk, a hand edit) is rebuilt with a one-line note.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from remaster.core.outputs import atomic_output
from remaster.core.resources import cache_dir


def graph_dir() -> Path:
    return cache_dir() / "graphs"


def parameter_of(initializer: str, parameters: Iterable[str]) -> str | None:
    """The torch parameter an ONNX initializer holds: the dynamo exporter names it by its path, under
    the wrapper's own prefix where a wrapper of the network is exported (UpcunetBody, UpcunetStage:
    `model.unet1.conv1.conv.0.weight` for the network's `unet1.conv1.conv.0.weight`)."""
    for name in parameters:
        if initializer == name or initializer.endswith("." + name):
            return name
    return None


# The input and output names of a frame graph (the part "frame": graph/frame.py), which a prepared
# run reads without PyTorch (engines/openvino_engine/prepared.py).
FRAME_INPUT = "x"
FRAME_OUTPUT = "y"


@dataclass(frozen=True)
class GraphKey:
    """What an exported graph depends on (see the module docstring)."""

    weights: str  # weights_sha256
    # The network the weights go in, and its scale: realesr-animevideov3's 2x and 3x files hold the
    # same weights, behind a different resize.
    network: str
    part: str  # "frame" (graph/frame.py), "body", or "stage0" .. "stage4" for an SE model's stages
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # (name, shape): the batch and the frame or tile size
    precision: str  # the graph's own: runtimes lower it at compile time (OpenVINO's inference precision)
    exporter: str  # torch, onnxscript and onnx versions and the opset

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CachedKind:
    """What a cache folder holds, for its file names and its one-line notes."""

    suffix: str  # ".onnx"
    noun: str  # "graph": "cached graph ... is damaged"
    plural: str  # "cannot keep exported graphs in ..."
    making: str  # "exporting it again"


GRAPHS = CachedKind(".onnx", "graph", "exported graphs", "exporting")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_state(onnx_path: Path, meta_path: Path, key: Any) -> str:
    """ "ok", "missing", or why the entry is damaged."""
    if not onnx_path.exists() and not meta_path.exists():
        return "missing"
    try:
        meta = json.loads(meta_path.read_text())
        if meta["key"] != json.loads(json.dumps(asdict(key))):
            return "its record names another key"
        if file_sha256(onnx_path) != meta["sha256"]:
            return "its bytes do not match their sha256"
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '').name} is missing"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its record is unreadable ({type(exc).__name__})"
    return "ok"


def graph_entry(key: Any, folder: Path | None = None, kind: CachedKind = GRAPHS) -> Path | None:
    """The cached file for `key` where the entry is whole, else None (missing or damaged: see `cached_graph`)."""
    folder = folder or graph_dir()
    path, meta_path = folder / f"{key.digest}{kind.suffix}", folder / f"{key.digest}.json"
    return path if _entry_state(path, meta_path, key) == "ok" else None


@contextmanager
def cached_graph(
    key: Any, build: Callable[[Path], None], folder: Path | None = None, kind: CachedKind = GRAPHS
) -> Iterator[Path]:
    """The file for `key` (a frozen dataclass with a `digest`), while the block runs: from the cache
    where it is whole, else made by `build(path)` and kept there. `kind`: ONNX graphs, or another
    runtime's files made from them (engines/tensorrt_engine: serialized engines).

    A cache that cannot be written (a read-only home, a full disk) does not stop the job: the file
    is built in a temporary folder, removed after the block, and the cause said in one line."""
    folder = folder or graph_dir()
    onnx_path, meta_path = folder / f"{key.digest}{kind.suffix}", folder / f"{key.digest}.json"
    state = _entry_state(onnx_path, meta_path, key)
    if state == "ok":
        yield onnx_path
        return
    if state != "missing":
        print(f"remaster: cached {kind.noun} {onnx_path} is damaged ({state}); {kind.making} it again", file=sys.stderr)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(onnx_path) as partial:
            build(partial)
        record = {"key": asdict(key), "sha256": file_sha256(onnx_path)}
        with atomic_output(meta_path) as partial:
            partial.write_text(json.dumps(record, indent=1))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"remaster: cannot keep {kind.plural} in {folder} ({reason}); {kind.making} for this run only",
            file=sys.stderr,
        )
        with tempfile.TemporaryDirectory(prefix="remaster-graph-") as scratch:
            path = Path(scratch) / onnx_path.name
            build(path)
            yield path
        return
    yield onnx_path

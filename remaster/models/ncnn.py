"""Read an ncnn `.param`/`.bin` pair into PyTorch tensors.

Format notes (ncnn wiki "param and model file structure", checked on every Real-CUGAN file):
- `.param` is text: magic 7767517, `layer_count blob_count`, then one layer a line:
  `type name n_in n_out inputs... outputs... key=value...`.
- `.bin` holds, for each Convolution, Deconvolution and InnerProduct layer in `.param` order,
  a uint32 storage tag, the weights, then `num_output` float32 biases (no tag); for each PReLU
  layer, `num_slope` float32 slopes with no tag (ncnn's prelu.cpp loads them as raw floats).
  Checked on every Real-ESRGAN file: the sizes add up to the `.bin` to the byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PARAM_MAGIC = "7767517"
# Storage tags of ncnn's ModelBinFromDataReader: float16 or raw float32 weights.
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32 = 0x00000000
WEIGHTED_LAYERS = ("Convolution", "Deconvolution", "InnerProduct", "PReLU")
# Layer keys: 0 num_output for all three. (De)convolution: 1 kernel size, 5 bias term,
# 6 weight count. InnerProduct: 1 bias term, 2 weight count.
KEY_NUM_OUTPUT, KEY_KERNEL = "0", "1"
# PReLU: 0 num_slope, read below as its "num_output".
KEY_BIAS = {"Convolution": "5", "Deconvolution": "5", "InnerProduct": "1"}
KEY_WEIGHT_COUNT = {"Convolution": "6", "Deconvolution": "6", "InnerProduct": "2"}


class NcnnFormatError(ValueError):
    """The `.param`/`.bin` pair is not what this reader understands."""


@dataclass(frozen=True)
class NcnnLayer:
    kind: str
    name: str
    weight: torch.Tensor  # in PyTorch's layout for the matching nn layer
    bias: torch.Tensor | None


@dataclass(frozen=True)
class ParamLayer:
    """One line of a `.param` file: the layer, the blobs it reads and writes, its keys as written."""

    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    keys: dict[str, str]  # in file order, values verbatim (arrays stay `n,v1,v2` text)


def read_layers(path: Path) -> list[ParamLayer]:
    """Each layer of the graph with its input and output blob names, in file order."""
    lines = path.read_text().split("\n")
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise NcnnFormatError(f"{path}: not an ncnn .param file (no magic {PARAM_MAGIC})")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        blobs = fields[4 : 4 + n_in + n_out]
        keys = dict(f.split("=", 1) for f in fields[4 + n_in + n_out :])
        layers.append(ParamLayer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), keys))
    return layers


def read_param(path: Path) -> list[tuple[str, str, dict[str, str]]]:
    """Each layer of the graph as (type, name, keys), in file order."""
    return [(layer.kind, layer.name, layer.keys) for layer in read_layers(path)]


@dataclass(frozen=True)
class _Weights:
    """One weighted layer's data in the `.bin`: bytes [start, end), tag included."""

    layer: ParamLayer
    start: int
    end: int
    weights: np.ndarray  # as stored (float16 or float32); PReLU: the slopes
    bias: np.ndarray | None


def _weight_records(param_path: Path, bin_path: Path) -> list[_Weights]:
    """Every weighted layer's data, in graph order; the sizes must add up to the `.bin`."""
    blob = bin_path.read_bytes()
    offset = 0
    records = []
    for layer in read_layers(param_path):
        kind, name, keys = layer.kind, layer.name, layer.keys
        if kind not in WEIGHTED_LAYERS:
            continue
        start = offset
        n_out = int(keys[KEY_NUM_OUTPUT])
        if kind == "PReLU":
            slopes = _take(blob, offset, np.float32, n_out, bin_path, name)
            offset += slopes.nbytes
            records.append(_Weights(layer, start, offset, slopes, None))
            continue
        n_weights = int(keys[KEY_WEIGHT_COUNT[kind]])
        if offset + 4 > len(blob):
            raise NcnnFormatError(f"{bin_path}: ends before the weights of layer {name}")
        tag = int.from_bytes(blob[offset : offset + 4], "little")
        offset += 4
        dtype = {TAG_FLOAT16: np.float16, TAG_FLOAT32: np.float32}.get(tag)
        if dtype is None:
            raise NcnnFormatError(f"{bin_path}: layer {name} has unsupported storage tag {tag:#x}")
        weights = _take(blob, offset, dtype, n_weights, bin_path, name)
        offset += weights.nbytes
        bias = None
        if keys.get(KEY_BIAS[kind], "0") == "1":
            bias = _take(blob, offset, np.float32, n_out, bin_path, name)
            offset += bias.nbytes
        records.append(_Weights(layer, start, offset, weights, bias))
    if offset != len(blob):
        raise NcnnFormatError(f"{bin_path}: {len(blob) - offset} bytes left after the last layer")
    return records


def read_ncnn(param_path: Path, bin_path: Path) -> list[NcnnLayer]:
    """The weighted layers of an ncnn model, in graph order."""
    layers = []
    for record in _weight_records(param_path, bin_path):
        kind, name, keys = record.layer.kind, record.layer.name, record.layer.keys
        if kind == "PReLU":
            layers.append(NcnnLayer(kind, name, torch.from_numpy(record.weights.copy()), None))
        else:
            layers.append(_to_torch(kind, name, keys, int(keys[KEY_NUM_OUTPUT]), record.weights, record.bias))
    return layers


def weight_bytes(param_path: Path, bin_path: Path) -> dict[str, bytes]:
    """Each weighted layer's bytes of the `.bin`, as stored (tag, weights, biases), by layer name.

    A sub-graph's `.bin` is its weighted layers' bytes in its own layer order.
    """
    blob = bin_path.read_bytes()
    return {r.layer.name: blob[r.start : r.end] for r in _weight_records(param_path, bin_path)}


def _take(blob: bytes, offset: int, dtype, count: int, path: Path, layer: str) -> np.ndarray:
    if offset + count * np.dtype(dtype).itemsize > len(blob):
        raise NcnnFormatError(f"{path}: ends inside the weights of layer {layer}")
    return np.frombuffer(blob, dtype=dtype, count=count, offset=offset)


def _to_torch(kind, name, keys, n_out, weights, bias) -> NcnnLayer:
    w = torch.from_numpy(weights.astype(np.float32))
    if kind == "InnerProduct":
        # [out][in]: a 1x1 convolution's weight once given two unit axes.
        w = w.reshape(n_out, -1, 1, 1)
    else:
        k = int(keys[KEY_KERNEL])
        w = w.reshape(n_out, -1, k, k)
        if kind == "Deconvolution":
            # ncnn stores deconvolutions [out][in][k][k]; ConvTranspose2d wants [in][out][k][k].
            # No spatial flip: both apply the kernel the same way round.
            w = w.transpose(0, 1)
    b = None if bias is None else torch.from_numpy(bias.copy())
    return NcnnLayer(kind=kind, name=name, weight=w.contiguous(), bias=b)

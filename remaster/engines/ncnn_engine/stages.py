"""Exact tiles on ncnn: an SE model's graph cut into stage sub-graphs at its global means.

An SE block gates a map by the map's mean over the whole frame. ncnn runners (realcugan-ncnn-vulkan,
waifu2x-ncnn-vulkan) run the whole graph on each tile, so each tile gates with its own mean and
seams appear. The torch engine avoids that by running the body in stages (engines/tiling/tiles.py); this
module does the same with the model's own ncnn graph, so that Vulkan and ncnn's CPU path give the
untiled result in memory bounded by the tile.

The cut (`cut_at_means`): in these graphs each SE block's mean is a `Pooling` layer with global
average pooling, whose 1-D output (one value a channel) feeds the block's two InnerProducts.
Every such layer ends a stage. Stage k is the layers between mean k-1 and mean k in file order (a
`.param` lists layers in an order where every layer comes after its inputs' producers). Its inputs
are the blobs it reads that earlier stages made (U-Net skip connections: several) and, from stage
1 on, the pooled blob, now an input that the runner fills with the whole frame's mean. Its outputs
are the blobs a later stage reads, the map the next mean is taken of, and, in the last stage, the
graph's output. Each sub-graph is written as `.param` text and the `.bin` bytes of its weighted
layers, and loaded with ncnn once.

The run (`run_staged_tiled`): every tile runs stage k; at the cut it sums the part of the SE map
that it owns (`tiling.Span.owned`, the torch engine's tiles and geometry, so each tile's map is an
exact window of the frame's and the owned parts partition it); the sums over all tiles divided by
the frame's map area are the exact mean, fed to stage k+1 of every tile. Tile states wait between
stages in a `TileStates` (host memory, past a budget a temporary file).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ncnn
import numpy as np
import torch

from remaster.architectures.descriptor import SeStages
from remaster.architectures.realcugan.geometry import UpcunetPadding
from remaster.engines.ncnn_engine.net import NcnnOptions, new_net
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import Tile
from remaster.models.ncnn import PARAM_MAGIC, NcnnFormatError, ParamLayer, read_layers, weight_bytes

# ncnn src/layer/pooling.cpp: key 0 pooling_type (0 max, 1 average), key 4 global_pooling (0/1);
# every SE block of the packaged Real-CUGAN and waifu2x cunet graphs has `Pooling ... 0=1 4=1`.
POOLING_TYPE, GLOBAL_POOLING = "0", "4"
AVERAGE = "1"
# Suffix of the blobs a written Split layer makes (`<blob>_use0`, ...): ncnn wants one consumer a blob.
SPLIT_SUFFIX = "_use"


def is_global_mean(layer: ParamLayer) -> bool:
    return layer.kind == "Pooling" and layer.keys.get(POOLING_TYPE) == AVERAGE and layer.keys.get(GLOBAL_POOLING) == "1"


@dataclass(frozen=True)
class StageGraph:
    """One stage as an ncnn sub-graph; blob names are the original graph's (Splits resolved)."""

    param: str  # .param text
    weights: bytes  # .bin: the stage's weighted layers' bytes, in its layer order
    inputs: tuple[str, ...]  # blobs to feed: earlier stages' blobs, the frame, or a mean
    outputs: tuple[str, ...]  # blobs to extract: read by a later stage, averaged, or the graph's output
    extract_as: dict[str, str]  # output blob -> its name in the sub-graph (a Split's copy where needed)
    se_input: str | None  # the map whose frame mean ends this stage; None for the last stage
    se_mean: str | None  # the blob that mean is fed as to later stages (the Pooling's output)


@dataclass(frozen=True)
class CutGraph:
    stages: list[StageGraph]
    input: str  # the graph's input blob (the padded frame)
    output: str  # the graph's output blob


def cut_at_means(param_path: Path, bin_path: Path) -> CutGraph:
    """The graph of `param_path` cut at every global-average Pooling (one stage if it has none)."""
    layers = read_layers(param_path)
    weights = weight_bytes(param_path, bin_path)
    # Split layers only copy a blob for ncnn's one-consumer rule; drop them and name every copy
    # by its source, so that a blob is one name across stages. The sub-graphs get new Splits.
    source: dict[str, str] = {}
    graph_inputs: list[str] = []
    body: list[ParamLayer] = []
    for layer in layers:
        inputs = tuple(source.get(blob, blob) for blob in layer.inputs)
        if layer.kind == "Split":
            source.update((blob, inputs[0]) for blob in layer.outputs)
        elif layer.kind == "Input":
            graph_inputs.extend(layer.outputs)
        else:
            body.append(ParamLayer(layer.kind, layer.name, inputs, layer.outputs, layer.keys))
    if len(graph_inputs) != 1:
        raise NcnnFormatError(f"{param_path}: {len(graph_inputs)} Input blobs, a frame model has one")
    groups: list[list[ParamLayer]] = [[]]
    means: list[ParamLayer] = []
    for layer in body:
        if is_global_mean(layer):
            means.append(layer)
            groups.append([])
        else:
            groups[-1].append(layer)
    read = {blob for layer in body for blob in layer.inputs}
    finals = [blob for layer in body for blob in layer.outputs if blob not in read]
    if len(finals) != 1:
        raise NcnnFormatError(f"{param_path}: {len(finals)} output blobs, a frame model has one")
    taken = {blob for layer in layers for blob in layer.outputs}
    stages = []
    for index, group in enumerate(groups):
        later = {blob for g in groups[index + 1 :] for layer in g for blob in layer.inputs}
        se_input = means[index].inputs[0] if index < len(means) else None
        wanted = later | {finals[0]} | ({se_input} if se_input is not None else set())
        made = [blob for layer in group for blob in layer.outputs]
        outputs = tuple(blob for blob in made if blob in wanted)
        inputs = tuple(dict.fromkeys(b for layer in group for b in layer.inputs if b not in made))
        param, extract_as = _write_param(group, inputs, outputs, taken)
        stage_weights = b"".join(weights[layer.name] for layer in group if layer.name in weights)
        se_mean = means[index].outputs[0] if se_input is not None else None
        stages.append(StageGraph(param, stage_weights, inputs, outputs, extract_as, se_input, se_mean))
    return CutGraph(stages, graph_inputs[0], finals[0])


def _write_param(
    group: list[ParamLayer], inputs: tuple[str, ...], outputs: tuple[str, ...], taken: set[str]
) -> tuple[str, dict[str, str]]:
    """The `.param` text of one stage, and the names to extract its outputs by.

    ncnn gives a blob one consumer: with light mode on, a consumed blob is freed, and an in-place
    layer may overwrite it. So a blob read by several layers, or read and also extracted, gets a
    Split with one copy per use, as the converters write them.
    """
    uses = Counter(blob for layer in group for blob in layer.inputs) + Counter(outputs)
    copies: dict[str, list[str]] = {}
    lines: list[str] = []

    def produced(blob: str) -> None:
        if uses[blob] > 1:
            names = [f"{blob}{SPLIT_SUFFIX}{i}" for i in range(uses[blob])]
            if taken.intersection(names):
                raise NcnnFormatError(f"blob name {names[0]} already taken; cannot write a Split for {blob}")
            lines.append(_line("Split", f"split_{blob}", (blob,), tuple(names), {}))
            copies[blob] = names

    def use(blob: str) -> str:
        return copies[blob].pop(0) if blob in copies else blob

    for blob in inputs:
        lines.append(_line("Input", f"input_{blob}", (), (blob,), {}))
        produced(blob)
    for layer in group:
        lines.append(_line(layer.kind, layer.name, tuple(use(b) for b in layer.inputs), layer.outputs, layer.keys))
        for blob in layer.outputs:
            produced(blob)
    extract_as = {blob: use(blob) for blob in outputs}
    blob_count = sum(int(line.split()[3]) for line in lines)  # every blob has one producer: its line
    return "\n".join([PARAM_MAGIC, f"{len(lines)} {blob_count}", *lines]) + "\n", extract_as


def _line(kind: str, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], keys: dict[str, str]) -> str:
    fields = [kind, name, str(len(inputs)), str(len(outputs)), *inputs, *outputs]
    fields += [f"{key}={value}" for key, value in keys.items()]
    return " ".join(fields)


def tile_multiple(geometry: UpcunetPadding, options: NcnnOptions) -> int:
    """What tile starts must be multiples of (`tiling.plan_tiles`' `multiple`) for exact tiles.

    fp32: 4, the torch engine's (`SeStages.multiple`), so both engines cut the same tiles. fp16:
    also a multiple of 2 at every resolution a 3x3 convolution runs at, so that each tile's
    Winograd F(2,3) blocks (2x2 outputs) fall where the whole frame's do; the lowest resolutions
    are the SE maps' (unet1's half, unet2's quarter), higher ones are these times powers of two.
    Measured: 3x at multiple 4 gives 62.7 dB tiled against untiled in fp16, at 8 bit-identical.
    """
    multiple = SeStages().multiple
    if not options.fp16:
        return multiple
    while any((multiple * res) % 2 for res in geometry.se_resolution):
        multiple += SeStages().multiple
    return multiple


def load_net(net: ncnn.Net, param: str, weights: bytes, what: str) -> None:
    """Load `.param` text and `.bin` bytes into `net`; `what` names the model in errors."""
    if net.load_param_mem(param) != 0:
        raise NcnnFormatError(f"{what}: ncnn cannot load the graph")
    # The binding's load_model_mem takes a str, which cannot carry the .bin's bytes: a file it is.
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(weights)
        file.flush()
        if net.load_model(file.name) != 0:
            raise NcnnFormatError(f"{what}: ncnn cannot load the weights")


class NcnnStages:
    """An SE model's stage sub-graphs, loaded once into ncnn with `options`."""

    def __init__(self, param_path: Path, bin_path: Path, options: NcnnOptions | None = None):
        self.options = options or NcnnOptions()
        cut = cut_at_means(param_path, bin_path)
        self.graphs = cut.stages
        self.input, self.output = cut.input, cut.output
        self.nets = []
        for index, graph in enumerate(self.graphs):
            net = new_net(self.options)
            load_net(net, graph.param, graph.weights, f"{param_path} (stage {index})")
            self.nets.append(net)
        # Blobs a tile keeps after stage k: those a later stage reads (means excepted: they are the frame's).
        self.kept_after = [
            {blob for later in self.graphs[k + 1 :] for blob in later.inputs} for k in range(len(self.graphs))
        ]

    @property
    def se_count(self) -> int:
        return len(self.graphs) - 1

    def run_stage(self, index: int, blobs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stage `index` on one tile: its input blobs in, its output blobs out (float32, C x H x W or C)."""
        graph = self.graphs[index]
        extractor = self.nets[index].create_extractor()
        for name in graph.inputs:
            # A Mat made on a numpy array shares its memory without keeping the array alive, and an
            # in-place layer (BinaryOp, a fused activation) would write into it: so a copy that ncnn
            # owns, made while the (maybe temporary, contiguous) array is still referenced here.
            array = np.ascontiguousarray(blobs[name], dtype=np.float32)
            extractor.input(name, ncnn.Mat(array).clone())
        out = {}
        for name in graph.outputs:
            status, mat = extractor.extract(graph.extract_as[name])
            if status != 0:
                raise RuntimeError(f"ncnn failed in stage {index} extracting blob {name} (status {status})")
            out[name] = np.array(mat)  # a copy: the Mat's memory goes with the extractor
        return out


def _window(padded: np.ndarray, tile: Tile, margin: int) -> np.ndarray:
    r, c = tile.rows, tile.cols
    return padded[:, r.start : r.start + r.length + 2 * margin, c.start : c.start + c.length + 2 * margin]


def run_staged_tiled(
    stages: NcnnStages,
    padded: np.ndarray,
    tiles: list[Tile],
    geometry: UpcunetPadding,
    store: TileStates | None = None,
) -> np.ndarray:
    """The graph's output for one padded frame, computed tile by tile with whole-frame SE means.

    `padded`: C x Hp x Wp float32, the frame as the torch engine's `model.pad` makes it (RGB in
    [0, 1], padded by `geometry`, Pro input transform and all). `tiles`: `tiling.plan_tiles` of the
    padded frame's core (Hp - 2 pad, Wp - 2 pad) at the model's tile multiple; one tile is the
    whole frame. Returns C x (scale core_h) x (scale core_w) float32, the body's output before
    `model.finish` (crop to the frame, 4x residual). `store` holds tile states between stages
    (default: memory); the caller closes one it passes.
    """
    g = geometry
    if padded.ndim != 3:
        raise ValueError(f"want one C x H x W frame, got shape {padded.shape}")
    if len(g.se_resolution) != stages.se_count:
        raise ValueError(f"the graph has {stages.se_count} SE means, the geometry {len(g.se_resolution)}")
    core_h, core_w = padded.shape[1] - 2 * g.pad, padded.shape[2] - 2 * g.pad
    own_store = store is None
    store = TileStates(torch.device("cpu")) if store is None else store
    cpu = torch.device("cpu")
    means: dict[str, np.ndarray] = {}
    out: np.ndarray | None = None
    try:
        for index, graph in enumerate(stages.graphs):
            sums: np.ndarray | None = None
            count = 0
            for t, tile in enumerate(tiles):
                if index == 0:
                    state = {stages.input: _window(padded, tile, g.pad)}
                else:
                    state = {name: tensor.numpy() for name, tensor in store.take(t, cpu).items()}
                state.update(stages.run_stage(index, {**state, **means}))
                if graph.se_input is not None:
                    se_map = state[graph.se_input]
                    res = g.se_resolution[index]
                    rows, cols = tile.rows.owned(res, se_map.shape[-2]), tile.cols.owned(res, se_map.shape[-1])
                    # float64: the sum of a frame's map (millions of values) in float32 loses digits.
                    part = se_map[:, :rows, :cols].sum(axis=(1, 2), dtype=np.float64)
                    sums = part if sums is None else sums + part
                    count += rows * cols
                    kept = stages.kept_after[index]
                    store.put(t, {name: torch.from_numpy(a) for name, a in state.items() if name in kept})
                else:
                    result = state[stages.output]
                    r, c, s = tile.rows, tile.cols, g.scale
                    if out is None:
                        out = np.empty((result.shape[0], s * core_h, s * core_w), np.float32)
                    assert result.shape[1:] == (s * r.length, s * c.length), "tile output off the geometry"
                    out[:, s * r.start : s * (r.start + r.length), s * c.start : s * (c.start + c.length)] = result
                del state
            if graph.se_mean is not None:
                assert sums is not None
                means[graph.se_mean] = (sums / count).astype(np.float32)
    finally:
        if own_store:
            store.close()
    assert out is not None
    return out

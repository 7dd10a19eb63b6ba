"""The openvino engine: each network exported once to ONNX (engines/graph), compiled and run by OpenVINO
on the CPU or an Intel GPU.

A whole frame of remaster's own architectures runs as one graph with its padding and cut inside
(engines/graph/frame.py), the next frame's inference overlapping the last's copy out; around it only
the conversion from and to 8/16-bit pictures (engines/host_frames.py). Such a graph, once it has run
for a packaged model and a frame size, is remembered so that the next run needs no PyTorch at all
(prepared.py). Tiles run the torch engine's tilers on host tensors, as for the ncnn engine: an SE
model (Real-CUGAN, waifu2x cunet) one graph per stage with the whole frame's gate as an input,
through `run_body_tiled`, so tiled equals untiled here too; a local network (Real-ESRGAN, waifu2x
upconv_7) one graph per window shape under `run_local_tiled`; a community model one per window
under the cross-fading tiler.

A graph is made for each input shape it meets (a video has one frame size, a tiled frame a few tile
shapes), exported and checked against torch on its first input (>= VERIFY_DB), then cached on disk
(engines/graph/cache.py) and compiled once per engine.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from remaster.architectures.descriptor import Blended, LoadedModel, ReceptiveField, SeStages
from remaster.architectures.realcugan.export import UpcunetStage, stage_input_names
from remaster.architectures.realcugan.network import State, UpCunet
from remaster.core.errors import UsageError
from remaster.core.precision import Precision
from remaster.engines.base import Upscaler
from remaster.engines.device import DTYPES, auto_tile, precision_name, resolve_precision, whole_frame_bytes
from remaster.engines.graph.cache import FRAME_INPUT, FRAME_OUTPUT, GraphKey, cached_graph
from remaster.engines.graph.export import (
    VERIFY_DB,
    GraphExportError,
    agreement_db,
    export_onnx,
    float32_weights,
    graph_key,
    weights_sha256,
)
from remaster.engines.graph.frame import WholeFrame, has_frame_graph
from remaster.engines.openvino_engine.prepared import PreparedGraph
from remaster.engines.openvino_engine.runtime import (
    CompiledGraph,
    CompileTarget,
    import_openvino,
    openvino_device,
    supported_precisions,
)
from remaster.engines.settings import EngineSettings
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles, run_body_tiled

GraphInputs = dict[str, Tensor]


def _engine_dtype(settings: EngineSettings, device: str, loaded: LoadedModel) -> torch.dtype:
    native = supported_precisions(device)
    descriptor = loaded.descriptor
    if settings.precision == Precision.AUTO:
        if device == "CPU":
            dtype = resolve_precision("auto", torch.device("cpu"), descriptor.auto_cpu_bf16)
            return dtype if Precision.BF16 in native else torch.float32
        return torch.float16 if Precision.FP16 in native and Precision.FP16 in descriptor.precisions else torch.float32
    if settings.precision not in native:
        have = ", ".join(native)
        raise UsageError(f"precision {settings.precision}: OpenVINO on {device} computes {have} here")
    if settings.precision not in descriptor.precisions:
        raise UsageError(f"precision {settings.precision}: {descriptor.name} runs {', '.join(descriptor.precisions)}")
    return DTYPES[Precision(settings.precision)]


class OpenVinoUpscaler(Upscaler):
    """An `Upscaler` whose network runs in OpenVINO; frames stay in host memory around it."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings):
        import_openvino()
        device = openvino_device(settings.device)
        dtype = _engine_dtype(settings, device, loaded)
        super().__init__(loaded, torch.device("cpu"), dtype, settings)
        # A float32 copy to export from: the loaded module may be set to another precision by a torch engine.
        self.network = copy.deepcopy(loaded.module).float().eval()
        self.weights = weights_sha256(self.network)
        self.target = CompileTarget(device, Precision(precision_name(dtype)))
        self.float32_weights = float32_weights(self.network)
        self.graphs: dict[tuple, CompiledGraph] = {}
        # (height, width) -> the key of the frame graph that ran whole frames of that size.
        self.frame_keys: dict[tuple[int, int], GraphKey] = {}
        self.exported = 0  # graphs exported (not found in the cache) by this engine
        if not isinstance(self.tiling, SeStages):
            self.body = self._run_body

    @property
    def where(self) -> str:
        return f"{self.target.device.lower()} openvino"

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, torch.float32, self.device)

    # -- graphs -----------------------------------------------------------------------------

    def graph(self, part: str, module: nn.Module, inputs: GraphInputs, outputs: Sequence[str]) -> CompiledGraph:
        """`module` (fp32) as a graph compiled for this engine's target, for inputs shaped as `inputs`."""
        shapes = tuple((name, tuple(t.shape)) for name, t in inputs.items())
        known = self.graphs.get((part, shapes))
        if known is not None:
            return known
        d = self.descriptor
        key = graph_key(d.architecture, d.scale, self.weights, part, shapes)
        if part == "frame":
            self.frame_keys[tuple(inputs[FRAME_INPUT].shape[-2:])] = key
        fresh = []

        def build(path) -> None:
            export_onnx(module, [t.float() for t in inputs.values()], list(inputs), outputs, path)
            fresh.append(path)

        with cached_graph(key, build) as path:
            if fresh:
                self.exported += 1
                self._verify(part, path, module, inputs)
            compiled = CompiledGraph(path, self.target, self.float32_weights)
        self.graphs[(part, shapes)] = compiled
        return compiled

    def _verify(self, part: str, path, module: nn.Module, inputs: GraphInputs) -> None:
        """The exported graph against torch on its first input, both float32 on the CPU."""
        with torch.inference_mode():
            want = module(*[t.float().clone() for t in inputs.values()])
        want = want if isinstance(want, tuple) else (want,)
        got = CompiledGraph(path, CompileTarget("CPU", Precision.FP32)).run(inputs)
        for name, expected in zip(got, want, strict=True):
            db = agreement_db(got[name], expected)
            if not db >= VERIFY_DB:
                path.unlink(missing_ok=True)  # not kept: the next run exports again
                name = self.descriptor.name
                raise GraphExportError(
                    f"{name}: the exported {part} gives {db:.1f} dB against torch (want >= {VERIFY_DB:.0f})"
                )

    def _run_body(self, window: Tensor) -> Tensor:
        """A local or community network on one window (the tilers' body)."""
        inputs = {"x": window.float().contiguous()}
        return torch.from_numpy(self.graph("body", self.network, inputs, ["y"]).run(inputs)["y"])

    def _stage(self, index: int) -> Callable[[State, Tensor | None], State]:
        """Stage `index` of an SE model as `run_body_tiled` calls it, run by its graph."""
        model: UpCunet = self.network

        def run(state: State, gate: Tensor | None) -> State:
            tensors = [*state.values(), *([gate] if gate is not None else [])]
            names = stage_input_names(tuple(state), gate is not None)
            inputs = {name: tensor.float().contiguous() for name, tensor in zip(names, tensors, strict=True)}
            shapes = tuple((name, tuple(t.shape)) for name, t in inputs.items())
            compiled = self.graphs.get((f"stage{index}", shapes))
            if compiled is None:
                with torch.inference_mode():
                    outputs = tuple(model.stages[index]({k: v.clone() for k, v in state.items()}, gate))
                part = UpcunetStage(model, index, tuple(state), gate is not None, outputs)
                compiled = self.graph(f"stage{index}", part, inputs, outputs)
            return {name: torch.from_numpy(array) for name, array in compiled.run(inputs).items()}

        return run

    # -- frames -----------------------------------------------------------------------------

    def _run(self, x: Tensor) -> Tensor:
        if has_frame_graph(self.descriptor) and self._whole_frame(*x.shape[-2:]):
            return self._frames(x)
        return super()._run(x)

    def _whole_frame(self, height: int, width: int) -> bool:
        """Whether frames of this size run untiled (their core: the size rounded up to the model's alignment)."""
        d = self.descriptor
        align = d.border.align
        core = (height + -height % align, width + -width % align)
        return len(plan_tiles(*core, self.tile_for(height, width, 1), d.tile_multiple)) == 1

    def frame_graph(self, frame: Tensor) -> CompiledGraph:
        """The graph that runs whole frames of this 1 x 3 x H x W frame's size (engines/graph/frame.py),
        exported and checked on this frame where it is not in the cache."""
        inputs = {FRAME_INPUT: frame.float().contiguous()}
        return self.graph("frame", WholeFrame(self.network, self.descriptor), inputs, [FRAME_OUTPUT])

    def prepared(self, height: int, width: int) -> PreparedGraph | None:
        """How whole HxW frames ran, for the next run to run them without PyTorch (prepared.py);
        None where they did not run as a frame graph."""
        key = self.frame_keys.get((height, width))
        if key is None:
            return None
        d = self.descriptor
        # Where the tile was planned from free memory, the record holds while as much is free.
        needs = whole_frame_bytes(d.activations_per_pixel, height, width, 1, 4) if self.tile is None else 0
        return PreparedGraph(key, self.target.device, self.target.precision, tuple(self.float32_weights), d.name, needs)

    def _frames(self, x: Tensor) -> Tensor:
        """Whole frames, one at a time, the next frame's inference running while the last one's
        output is copied out."""
        graph = self.frame_graph(x[:1])
        pending: deque = deque()
        outputs = []
        for frame in x:
            pending.append(graph.start({FRAME_INPUT: frame[None]}))
            if len(pending) == len(graph.requests):
                outputs.append(graph.finish(pending.popleft())[FRAME_OUTPUT])
        outputs.extend(graph.finish(request)[FRAME_OUTPUT] for request in pending)
        self.tiles_run = 1
        return torch.from_numpy(np.concatenate(outputs))

    def _run_batch(self, x: Tensor) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_local(x, self.tiling)
        if isinstance(self.tiling, Blended):
            return self._run_blended(x, self.tiling, self.tile_for(*x.shape[-2:], x.shape[0]))
        return self._run_se(x)

    def _run_se(self, x: Tensor) -> Tensor:
        """An SE model's frames in tiles (whole frames run as frame graphs: `_frames`)."""
        model: UpCunet = self.network
        padded = model.pad(x.float()).contiguous()
        g = model.geometry
        core_h, core_w = padded.shape[-2] - 2 * g.pad, padded.shape[-1] - 2 * g.pad
        tiles = plan_tiles(core_h, core_w, self.tile_for(*x.shape[-2:], x.shape[0]), self.descriptor.tile_multiple)
        self.tiles_run = len(tiles)
        stages = [self._stage(index) for index in range(len(model.stages))]
        with TileStates(self.device, self.state_memory) as store:
            body = run_body_tiled(model, padded, tiles, stages, store)
        self._kept(store)
        return model.finish(body, x)

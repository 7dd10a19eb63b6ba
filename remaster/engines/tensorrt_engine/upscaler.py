"""The tensorrt engine: each network's cached float32 ONNX graph (the one the openvino engine reads),
typed for the engine's precision (precision.py), built by TensorRT once per GPU model, TensorRT
version, size and batch, and run on torch's CUDA stream with the frames' device tensors in and out.

As in the openvino engine only the network runs in the graph: `Upscaler.upscale` (upload, 8/16-bit,
alpha, rounding, download), each architecture's padding and cut (`UpCunet.pad`/`finish`,
`pad_frame`) and the tilers stay the torch engine's code, here on CUDA tensors. Whole frames of an
SE model run one engine (`UpcunetBody`); tiles run one engine per SE stage under `run_body_tiled`,
so tiled equals untiled; local models one engine per window shape, community models one per window.

Built engines are kept beside the graphs in the user cache (`tensorrt/`), written atomically, a
damaged or unloadable one rebuilt with a one-line note. A freshly built engine is checked on its
first input against the torch network in float32 on the same GPU (TF32 off): >= VERIFY_DB at fp32,
>= LOW_PRECISION_DB at fp16.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from remaster.architectures.descriptor import Blended, LoadedModel, ReceptiveField, SeStages
from remaster.architectures.realcugan.export import UpcunetBody, UpcunetStage, stage_input_names
from remaster.architectures.realcugan.network import State, UpCunet
from remaster.core.errors import UsageError
from remaster.core.precision import Precision
from remaster.core.resources import cache_dir
from remaster.engines.base import Upscaler
from remaster.engines.device import auto_tile, free_memory, precision_name, resolve_device, resolve_precision
from remaster.engines.graph.cache import CachedKind, cached_graph
from remaster.engines.graph.export import (
    VERIFY_DB,
    GraphExportError,
    agreement_db,
    export_onnx,
    float32_weights,
    graph_key,
    weights_sha256,
)
from remaster.engines.kinds import Engine
from remaster.engines.settings import EngineSettings
from remaster.engines.tensorrt_engine.plan import (
    BindingPlan,
    EngineKey,
    GpuIdentity,
    binding_plan,
    build_plan,
    engine_key,
)
from remaster.engines.tensorrt_engine.precision import plan_precision, typed_graph
from remaster.engines.tensorrt_engine.runtime import (
    TensorRtFailed,
    TensorRtGraph,
    build_engine,
    import_tensorrt,
    tensorrt_version,
)
from remaster.engines.tiling.states import TileStates
from remaster.engines.tiling.tiles import plan_tiles, run_body_tiled
from remaster.engines.torch_engine.upscaler import TorchUpscaler, state_device

ENGINES = CachedKind(".engine", "TensorRT engine", "TensorRT engines", "building")
# What an fp16 engine must reach against float32 torch on its first input: the bar the torch
# engine's fp16 is held to against fp32 (tests/test_engine.py, docs/engine.md "Devices, precision").
LOW_PRECISION_DB = 50.0
PRECISIONS = (Precision.FP16, Precision.FP32)

GraphInputs = dict[str, Tensor]
PartMaker = Callable[[nn.Module], nn.Module]  # the network -> the part a graph holds


def engine_dir():
    return cache_dir() / "tensorrt"


def gpu_identity(device: torch.device) -> GpuIdentity:
    return GpuIdentity(torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device))


def tensorrt_device(name: str) -> torch.device:
    """`--device` for the tensorrt engine: an NVIDIA GPU, else one line."""
    device = resolve_device(name, Engine.TORCH)
    if device.type != "cuda" or torch.version.hip:
        raise UsageError(f"device {name}: --engine tensorrt runs on an NVIDIA GPU (cuda[:N]), not {device}")
    return device


def _dtype(settings: EngineSettings, device: torch.device, loaded: LoadedModel) -> torch.dtype:
    d = loaded.descriptor
    supported = tuple(p for p in PRECISIONS if p in d.precisions)
    if settings.precision not in (Precision.AUTO, *supported):
        raise UsageError(f"precision {settings.precision}: the tensorrt engine runs {', '.join(supported)} here")
    return resolve_precision(settings.precision, device, d.auto_cpu_bf16, supported)


class TensorRtUpscaler(Upscaler):
    """An `Upscaler` whose network runs in TensorRT engines on one CUDA device.

    `fallback`: `--engine auto` chose it, so an engine that cannot be built or loaded is said in one
    line and the torch engine runs instead; asked for by name, the same is an error (exit 2)."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings, fallback: bool = False):
        import_tensorrt()
        device = tensorrt_device(settings.device)
        super().__init__(loaded, device, _dtype(settings, device, loaded), settings)
        self.loaded = loaded
        self.settings = settings
        self.fallback = fallback
        self.torch_engine: TorchUpscaler | None = None
        # A float32 copy to export from (the loaded module may be set to another precision by a torch
        # engine), one on the GPU for the first-input checks, and one on the meta device that tells a
        # stage's output names without computing it.
        self.network = copy.deepcopy(loaded.module).float().eval()
        self.weights = weights_sha256(self.network)
        self.parameters = [name for name, _ in self.network.named_parameters()]
        self.float32_parameters = float32_weights(self.network)
        self._reference: nn.Module | None = None
        self._shapes_only = copy.deepcopy(self.network).to("meta") if isinstance(self.tiling, SeStages) else None
        self.graphs: dict[tuple, TensorRtGraph] = {}
        self.built = 0  # engines this one built (not found in the cache)
        if not isinstance(self.tiling, SeStages):
            self.body = self._run_window

    @property
    def where(self) -> str:
        return f"{self.device} tensorrt" if self.torch_engine is None else str(self.device)

    def tile_for(self, height: int, width: int, batch: int) -> int:
        if self.tile is not None:
            return self.tile
        return auto_tile(self.descriptor.activations_per_pixel, height, width, batch, self.dtype, self.device)

    # -- engines ----------------------------------------------------------------------------

    def graph(self, part: str, make: PartMaker, inputs: GraphInputs, outputs: Sequence[str]) -> TensorRtGraph:
        """The engine of `make(network)` for inputs shaped as `inputs`: cached, else built and checked."""
        shapes = tuple((name, tuple(t.shape)) for name, t in inputs.items())
        known = self.graphs.get((part, shapes))
        if known is not None:
            return known
        d = self.descriptor
        key = graph_key(d.architecture, d.scale, self.weights, part, shapes)

        def export(path) -> None:
            examples = [t.detach().float().cpu() for t in inputs.values()]
            export_onnx(make(self.network), examples, list(inputs), outputs, path)

        with cached_graph(key, export) as path:
            model = onnx.load(str(path))
        precision = str(precision_name(self.dtype))
        typed = typed_graph(model, plan_precision(model, self.parameters, self.float32_parameters, precision))
        typed_bytes = typed.SerializeToString()
        bindings = binding_plan(typed)
        build = build_plan(free_memory(self.device))
        gpu = gpu_identity(self.device)
        ekey = engine_key(key.digest, typed_bytes, precision, bindings, gpu, tensorrt_version(), build)
        fresh: list[Path] = []

        def build_into(path: Path) -> None:
            # Minutes, once a size: said, so that a slow first frame is not taken for a hang.
            shape = "x".join(map(str, bindings.inputs[0].shape))
            print(f"remaster: building a TensorRT engine of {d.name} {part} for {shape} (once; kept)", file=sys.stderr)
            path.write_bytes(build_engine(typed_bytes, build))
            fresh.append(path)

        compiled, path = self._load(ekey, build_into, bindings, fresh)
        if fresh:
            self.built += 1
            self._verify(part, make, compiled, inputs, path)
        self.graphs[(part, shapes)] = compiled
        return compiled

    def _load(
        self, key: EngineKey, build: Callable[[Path], None], bindings: BindingPlan, fresh: list
    ) -> tuple[TensorRtGraph, Path]:
        """The engine for `key` from the cache, else built (`fresh` then names it), and where it is kept;
        a cached one TensorRT cannot load (or whose tensors are not the graph's) is built again, once,
        with a one-line note."""
        with cached_graph(key, build, engine_dir(), ENGINES) as path:
            try:
                return TensorRtGraph(path.read_bytes(), bindings, self.device), path
            except TensorRtFailed as exc:
                if fresh:
                    raise
                say = f"remaster: cached TensorRT engine {path} is unusable ({exc}); building it again"
                print(say, file=sys.stderr)
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
        with cached_graph(key, build, engine_dir(), ENGINES) as path:
            return TensorRtGraph(path.read_bytes(), bindings, self.device), path

    def _verify(self, part: str, make: PartMaker, compiled: TensorRtGraph, inputs: GraphInputs, path) -> None:
        """A fresh engine against the torch part in float32 on its first input's first frame."""
        if self._reference is None:
            self._reference = copy.deepcopy(self.network).to(self.device)
        first = {name: t[:1].float() for name, t in inputs.items()}
        was = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.inference_mode():
                want = make(self._reference)(*[t.clone() for t in first.values()])
        except torch.OutOfMemoryError:
            say = f"remaster: the new TensorRT engine of {part} is not checked against torch (out of GPU memory)"
            print(say, file=sys.stderr)
            return
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = was
        want = want if isinstance(want, tuple) else (want,)
        got = compiled.run(compiled_inputs(first, compiled))
        bar = VERIFY_DB if self.dtype == torch.float32 else LOW_PRECISION_DB
        for binding, expected in zip(compiled.plan.outputs, want, strict=True):
            db = agreement_db(got[binding.name][:1].cpu(), expected.cpu())
            if not db >= bar:
                path.unlink(missing_ok=True)  # not kept: the next run builds again, without a note
                path.with_suffix(".json").unlink(missing_ok=True)
                raise TensorRtFailed(
                    f"{self.descriptor.name}: the TensorRT engine of {part} gives {db:.1f} dB against torch"
                    f" (want >= {bar:.0f})"
                )

    def _run_window(self, window: Tensor) -> Tensor:
        """A local or community network on one window (the tilers' body)."""
        inputs = {"x": window.float()}
        return self.graph("body", lambda network: network, inputs, ["y"]).run(inputs)["y"]

    def _stage(self, index: int) -> Callable[[State, Tensor | None], State]:
        """Stage `index` of an SE model as `run_body_tiled` calls it, run by its engine."""

        def run(state: State, gate: Tensor | None) -> State:
            gated = gate is not None
            tensors = [*state.values(), *([gate] if gated else [])]
            names = stage_input_names(tuple(state), gated)
            inputs = {name: tensor.float() for name, tensor in zip(names, tensors, strict=True)}
            shapes = tuple((name, tuple(t.shape)) for name, t in inputs.items())
            compiled = self.graphs.get((f"stage{index}", shapes))
            if compiled is None:
                outputs = stage_outputs(self._shapes_only, index, state, gate)
                keys = tuple(state)

                def make(network: nn.Module) -> nn.Module:
                    return UpcunetStage(network, index, keys, gated, outputs)

                compiled = self.graph(f"stage{index}", make, inputs, outputs)
            return compiled.run(inputs)

        return run

    # -- frames -----------------------------------------------------------------------------

    def _forward(self, x: Tensor) -> Tensor:
        if self.torch_engine is not None:
            return self.torch_engine._forward(x)
        try:
            return self._run(x)
        except (TensorRtFailed, GraphExportError) as exc:
            if not self.fallback:
                raise
            print(f"remaster: {exc}; running the torch engine instead", file=sys.stderr)
            self.torch_engine = TorchUpscaler(self.loaded, replace(self.settings, engine=Engine.TORCH))
            return self.torch_engine._forward(x)

    def _run_batch(self, x: Tensor) -> Tensor:
        if isinstance(self.tiling, ReceptiveField):
            return self._run_local(x, self.tiling)
        if isinstance(self.tiling, Blended):
            return self._run_blended(x, self.tiling, self.tile_for(*x.shape[-2:], x.shape[0]))
        return self._run_se(x)

    def _run_se(self, x: Tensor) -> Tensor:
        model: UpCunet = self.network  # its pad and finish only: no weights, any device
        padded = model.pad(x.float())
        g = model.geometry
        core_h, core_w = padded.shape[-2] - 2 * g.pad, padded.shape[-1] - 2 * g.pad
        tiles = plan_tiles(core_h, core_w, self.tile_for(*x.shape[-2:], x.shape[0]), self.descriptor.tile_multiple)
        self.tiles_run = len(tiles)
        if len(tiles) == 1:
            inputs = {"padded": padded}
            body = self.graph("body", UpcunetBody, inputs, ["out"]).run(inputs)["out"]
        else:
            stages = [self._stage(index) for index in range(len(model.stages))]
            device = state_device(self.device, len(tiles))
            budget = self.state_memory if device.type == "cpu" else float("inf")  # one tile: the frame fits
            with TileStates(device, budget) as store:
                body = run_body_tiled(model, padded, tiles, stages, store)
            self._kept(store)
        return model.finish(body, x)


def compiled_inputs(inputs: GraphInputs, compiled: TensorRtGraph) -> GraphInputs:
    """`inputs` with the batch of the engine's inputs (a first-frame check on a batch-N engine: the
    frame repeated, so that the engine computes it as it will)."""
    batch = compiled.plan.inputs[0].shape[0]
    return {name: t.expand(batch, *t.shape[1:]) for name, t in inputs.items()}


def stage_outputs(meta_network: UpCunet, index: int, state: State, gate: Tensor | None) -> tuple[str, ...]:
    """The names of the state stage `index` returns for this input state (the stage graph's outputs),
    read off a run of `meta_network` (the network on the meta device) on meta tensors: no compute."""
    meta = {k: torch.empty(v.shape, device="meta") for k, v in state.items()}
    meta_gate = None if gate is None else torch.empty(gate.shape, device="meta")
    return tuple(meta_network.stages[index](meta, meta_gate))

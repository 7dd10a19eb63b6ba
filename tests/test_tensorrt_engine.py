"""The tensorrt engine. On the CPU: everything up to the engine build, from real exported graphs: the
precision plan against each network's `set_precision`, the strongly typed graph the builder gets
(run by ONNX Runtime against torch), the I/O bindings, the engine cache's key and files, the
choice of engine. On a GPU with TensorRT (skipped elsewhere, with the reason): the engine itself.

Exports take seconds each: the graphs are exported once for the session, at 32-40 px."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import picture

pytest.importorskip("onnxscript", reason="remaster[openvino] or remaster[tensorrt] not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the test extra) not installed")
import onnx  # noqa: E402
from onnx import TensorProto  # noqa: E402

from remaster.architectures.realcugan.export import UpcunetBody, UpcunetStage, stage_input_names  # noqa: E402
from remaster.engines.choice import gpu_engine, resolve_engine_choice  # noqa: E402
from remaster.engines.graph.cache import cached_graph  # noqa: E402
from remaster.engines.graph.export import agreement_db, export_onnx, float32_weights  # noqa: E402
from remaster.engines.kinds import Engine  # noqa: E402
from remaster.engines.settings import EngineSettings  # noqa: E402
from remaster.engines.tensorrt_engine.plan import (  # noqa: E402
    GpuIdentity,
    Role,
    binding_plan,
    build_plan,
    engine_key,
)
from remaster.engines.tensorrt_engine.precision import node_types, plan_precision, typed_graph  # noqa: E402
from remaster.engines.tensorrt_engine.upscaler import ENGINES, engine_dir, stage_outputs  # noqa: E402
from remaster.models.loader import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rgb(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels[None]).permute(0, 3, 1, 2).float() / 255


class Exported:
    """A network part (`make(network)`) exported to ONNX, with the input it was exported on."""

    def __init__(self, network, make, inputs: dict[str, torch.Tensor], outputs: list[str], path: Path):
        self.network, self.make, self.inputs, self.outputs = network, make, inputs, outputs
        export_onnx(make(network), list(inputs.values()), list(inputs), outputs, path)
        self.model = onnx.load(str(path))

    def plan(self, low: str = "fp16", keep_float32: bool = True):
        kept = float32_weights(self.network) if keep_float32 else []
        return plan_precision(self.model, [n for n, _ in self.network.named_parameters()], kept, low)

    def run(self, model: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {name: t.numpy() for name, t in self.inputs.items()})

    def torch_outputs(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        """The part in torch, its network at `dtype` as the torch engine sets it (`set_precision`)."""
        network = copy.deepcopy(self.network)
        if dtype != torch.float32:
            network.set_precision(dtype)
        with torch.inference_mode():
            out = self.make(network)(*[t.clone() for t in self.inputs.values()])
        return tuple(t.float() for t in (out if isinstance(out, tuple) else (out,)))


def _itself(network):
    return network


def _network(name: str):
    return load_model(name).module.float().eval()


@pytest.fixture(scope="session")
def graphs(tmp_path_factory) -> dict[str, Exported]:
    folder = tmp_path_factory.mktemp("graphs")
    found = {}
    realcugan = _network("2x-conservative")
    padded = realcugan.pad(rgb(picture("anime", 32, 40)))
    found["body"] = Exported(realcugan, UpcunetBody, {"padded": padded}, ["out"], folder / "body.onnx")
    # Stage 1 of a tile: reads two states, is gated, returns three (the tiler's run, one tile).
    state = realcugan.stages[0]({"x": padded.clone()}, None)
    gate = realcugan.se_blocks[0].gate(state[realcugan.SE_INPUT].float().mean(dim=(2, 3)))
    names = stage_input_names(tuple(state), True)
    inputs = dict(zip(names, [*state.values(), gate], strict=True))
    outputs = list(realcugan.stages[1]({k: v.clone() for k, v in state.items()}, gate))
    keys = tuple(state)

    def stage(network):
        return UpcunetStage(network, 1, keys, True, tuple(outputs))

    found["stage1"] = Exported(realcugan, stage, inputs, outputs, folder / "stage1.onnx")
    # Compact (PReLU, the nearest 2x residual, the bicubic resize) at batch 2.
    compact = _network("2x-esrgan-animevideo")
    frames = torch.cat([rgb(picture("anime", 24, 32)), rgb(picture("photo", 24, 32))])
    found["compact"] = Exported(compact, _itself, {"x": frames}, ["y"], folder / "compact.onnx")
    upconv = _network("2x-waifu2x-art-no-denoise")
    window = upconv.pad(rgb(picture("photo", 26, 30)))
    found["upconv7"] = Exported(upconv, _itself, {"x": window}, ["y"], folder / "upconv7.onnx")
    return found


PARTS = ["body", "stage1", "compact", "upconv7"]


def _weight_dtypes(exported: Exported) -> dict[str, torch.dtype]:
    """Each parameter's dtype in the torch engine's fp16 network (`set_precision`)."""
    half = copy.deepcopy(exported.network).set_precision(torch.float16)
    return {name: p.dtype for name, p in half.named_parameters()}


@pytest.mark.parametrize("part", PARTS)
def test_each_weighted_node_computes_in_its_weights_precision(graphs, part):
    """The plan keeps exactly the layers in float32 that the torch engine's fp16 network keeps."""
    exported = graphs[part]
    plan = exported.plan()
    low, kept = set(plan.low_nodes), set(plan.float32_nodes)
    dtypes = _weight_dtypes(exported)
    checked = {torch.float16: 0, torch.float32: 0}
    for node in exported.model.graph.node:
        for name in node.input:
            param = next((p for p in dtypes if name == p or name.endswith("." + p)), None)
            if param is None:
                continue
            want = dtypes[param]
            assert (node.name in low) == (want == torch.float16), f"{node.name} reads {param} ({want})"
            checked[want] += 1
        if node.op_type == "ReduceMean":
            assert node.name in kept, "the SE means stay float32"
    assert checked[torch.float16] and checked[torch.float32], checked


def test_without_the_float32_layers_every_weighted_node_is_low(graphs):
    """The check above can fail: a plan that ignores FLOAT32_LAYERS lowers the input and output layers."""
    exported = graphs["body"]
    with_them, without = exported.plan(), exported.plan(keep_float32=False)
    first_conv = exported.model.graph.node[0].name
    assert first_conv in with_them.float32_nodes and first_conv in without.low_nodes


@pytest.mark.parametrize("part", PARTS)
def test_the_typed_graph_is_strongly_typed_and_computes_the_network(graphs, part):
    """The graph the builder parses: every node's output in its planned type (strict type inference,
    which refuses a mismatch as a strongly typed builder does), casts where they meet, float32 in and
    out, low weights stored low; run by ONNX Runtime, the same network as torch's. ONNX Runtime's CPU
    kernels lack fp16 for some of these ops and compute those in float32, so the dB here say the graph
    is the network, not how fp16 rounds on a GPU (the GPU tests below and benchmarks/gpu.py do)."""
    exported = graphs[part]
    plan = exported.plan()
    typed = typed_graph(exported.model, plan)
    onnx.checker.check_model(typed, full_check=True)
    types = node_types(typed)  # strict: a type mismatch raises
    for name in plan.low_nodes:
        assert types[name] == TensorProto.FLOAT16, name
    for name in plan.float32_nodes:
        assert types[name] in (TensorProto.FLOAT, 0), name  # 0: no float output (shape arithmetic)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (*typed.graph.input, *typed.graph.output))
    stored = {t.name: t.data_type for t in typed.graph.initializer}
    assert TensorProto.FLOAT16 in stored.values()
    got = exported.run(typed)
    fp32_graph = exported.run(exported.model)
    for have, whole, want, want_half in zip(
        got, fp32_graph, exported.torch_outputs(), exported.torch_outputs(torch.float16), strict=True
    ):
        assert agreement_db(whole, want) >= 80, "the float32 graph is the network"
        assert agreement_db(have, want) >= 50, "fp16 against fp32: the bar the torch engine's fp16 is held to"
        assert agreement_db(have, want_half) >= 60, "the same network as the torch engine's fp16"


class SharedConstant(torch.nn.Module):
    """A float32 layer and a low one that read one constant: the exporter makes it one initializer."""

    def __init__(self):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(3, 8, 3)
        self.conv_mid = torch.nn.Conv2d(8, 8, 3)

    def forward(self, x):
        return self.conv_mid(self.conv_in(x) * 0.3) * 0.3


def test_a_constant_both_precisions_read_gets_a_low_copy(tmp_path):
    torch.manual_seed(0)
    network, x = SharedConstant().eval(), torch.rand(1, 3, 16, 16)
    export_onnx(network, [x], ["x"], ["y"], tmp_path / "shared.onnx")
    model = onnx.load(str(tmp_path / "shared.onnx"))
    parameters = [name for name, _ in network.named_parameters()]
    typed = typed_graph(model, plan_precision(model, parameters, ["conv_in.weight", "conv_in.bias"], "fp16"))
    node_types(typed)
    stored = {t.name: t.data_type for t in typed.graph.initializer}
    (shared,) = [name for name in stored if name.endswith("__fp16")]
    assert stored[shared] == TensorProto.FLOAT16 and stored[shared.removesuffix("__fp16")] == TensorProto.FLOAT
    assert stored["conv_in.weight"] == TensorProto.FLOAT and stored["conv_mid.weight"] == TensorProto.FLOAT16
    session = ort.InferenceSession(typed.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        assert agreement_db(session.run(None, {"x": x.numpy()})[0], network(x)) >= 50


def test_fp32_needs_no_rewrite(graphs):
    exported = graphs["compact"]
    plan = exported.plan("fp32")
    assert not plan.low_nodes
    assert typed_graph(exported.model, plan) is exported.model


def test_bindings_come_from_the_graph(graphs):
    body = binding_plan(graphs["body"].model)
    (frame,) = body.inputs
    assert (frame.name, frame.dtype, frame.role) == ("padded", "float32", Role.FRAME)
    assert frame.shape == tuple(graphs["body"].inputs["padded"].shape)
    (out,) = body.outputs
    assert out.role == Role.FRAME and out.shape == tuple(graphs["body"].torch_outputs()[0].shape)
    stage = binding_plan(graphs["stage1"].model)
    roles = {b.name: b.role for b in stage.inputs}
    assert roles == {"in_unet1_skip": Role.STATE, "in_se_input": Role.STATE, "in_gate": Role.GATE}
    assert {b.role for b in stage.outputs} == {Role.STATE}
    assert [b.name for b in stage.outputs] == graphs["stage1"].outputs
    compact = binding_plan(typed_graph(graphs["compact"].model, graphs["compact"].plan()))
    assert compact.inputs[0].shape == (2, 3, 24, 32) and compact.outputs[0].shape == (2, 3, 48, 64)
    assert compact.outputs[0].dtype == "float32"


def test_an_engine_with_other_tensors_is_refused(graphs):
    plan = binding_plan(graphs["stage1"].model)
    tensors = [(b.name, True, b.shape, b.dtype) for b in plan.inputs]
    tensors += [(b.name, False, b.shape, b.dtype) for b in plan.outputs]
    assert plan.mismatch(list(reversed(tensors))) is None
    name, is_input, shape, dtype = tensors[0]
    assert "not the graph's" in plan.mismatch([(name, is_input, (2, *shape[1:]), dtype), *tensors[1:]])
    assert plan.mismatch([(name, is_input, shape, "float16"), *tensors[1:]]) is not None


def test_the_engine_key_names_the_gpu_the_version_the_size_and_the_batch(graphs):
    exported = graphs["compact"]
    typed = typed_graph(exported.model, exported.plan()).SerializeToString()
    bindings = binding_plan(exported.model)
    build = build_plan(8 << 30)
    h100 = GpuIdentity("NVIDIA H100 80GB HBM3", (9, 0))
    key = engine_key("graph", typed, "fp16", bindings, h100, "11.4.0.106", build)
    assert key == engine_key("graph", typed, "fp16", bindings, h100, "11.4.0.106", build_plan(2 << 30))
    others = [
        engine_key("graph", typed, "fp16", bindings, GpuIdentity("NVIDIA GeForce RTX 4090", (8, 9)), "11.4", build),
        engine_key("graph", typed, "fp16", bindings, GpuIdentity(h100.name, (9, 1)), "11.4.0.106", build),
        engine_key("graph", typed, "fp16", bindings, h100, "11.5.0.1", build),
        engine_key("graph", typed, "fp32", bindings, h100, "11.4.0.106", build),
        engine_key("graph", typed + b" ", "fp16", bindings, h100, "11.4.0.106", build),
        engine_key("other", typed, "fp16", bindings, h100, "11.4.0.106", build),
    ]
    assert len({k.digest for k in [key, *others]}) == len(others) + 1
    assert key.inputs == (("x", (2, 3, 24, 32)),)  # the batch and the size, in the record


def test_the_build_plan():
    plan = build_plan(10 << 30)
    assert plan.workspace_bytes == 5 << 30 and not plan.tf32
    assert build_plan(0).workspace_bytes == 1 << 28


def test_a_damaged_engine_is_built_again_with_one_line(tmp_path, monkeypatch, graphs, capfd):
    """The engine cache's files: written atomically beside their record, a damaged one rebuilt."""
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path))
    exported = graphs["compact"]
    typed = typed_graph(exported.model, exported.plan()).SerializeToString()
    key = engine_key("g", typed, "fp16", binding_plan(exported.model), GpuIdentity("gpu", (9, 0)), "11", build_plan(0))
    builds = []

    def build(path: Path) -> None:  # the bytes TensorRT would serialize: here the typed graph's own
        builds.append(path)
        path.write_bytes(typed)

    with cached_graph(key, build, engine_dir(), ENGINES) as path:
        assert path.read_bytes() == typed and path.suffix == ".engine"
    assert path.parent == tmp_path / "cache" / "tensorrt"
    with cached_graph(key, build, engine_dir(), ENGINES):
        pass
    assert len(builds) == 1
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    capfd.readouterr()
    with cached_graph(key, build, engine_dir(), ENGINES) as again:
        assert again.read_bytes() == typed
    err = capfd.readouterr().err
    assert len(builds) == 2
    assert err.startswith("remaster: cached TensorRT engine ") and "damaged" in err and "building it again" in err
    assert len(err.strip().splitlines()) == 1


def test_stage_outputs_are_read_off_meta_tensors(graphs):
    realcugan = graphs["stage1"].network
    meta = copy.deepcopy(realcugan).to("meta")
    state = {name.removeprefix("in_"): t for name, t in graphs["stage1"].inputs.items() if name != "in_gate"}
    assert stage_outputs(meta, 1, state, graphs["stage1"].inputs["in_gate"]) == tuple(graphs["stage1"].outputs)


# -- the choice of engine ---------------------------------------------------------------------


def test_auto_takes_tensorrt_on_an_nvidia_gpu_where_it_is_installed():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert gpu_engine(Engine.AUTO, cuda, True, False) == Engine.TENSORRT
    assert gpu_engine(Engine.AUTO, cuda, False, False) == Engine.TORCH
    assert gpu_engine(Engine.AUTO, cuda, True, True) == Engine.TORCH  # --compile asks for torch
    assert gpu_engine(Engine.TORCH, cuda, True, False) == Engine.TORCH
    assert gpu_engine(Engine.AUTO, cpu, True, False) == Engine.TORCH


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the choice where PyTorch sees no CUDA GPU")
def test_without_cuda_auto_stays_as_it_was():
    settings = resolve_engine_choice(load_model("2x-conservative"), EngineSettings(device="auto", engine="auto"))
    assert settings.engine != Engine.TENSORRT and not settings.fallback


def remaster(*args: str, block_tensorrt: bool = False) -> subprocess.CompletedProcess:
    code = "import sys; from remaster.cli import main; sys.exit(main())"
    if block_tensorrt:
        code = "import sys; sys.modules['tensorrt'] = None; " + code
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)


def test_asking_for_tensorrt_without_it_is_one_line_naming_the_extra(tmp_path):
    from PIL import Image

    Image.fromarray(picture("anime", 32, 32)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = remaster("image", str(tmp_path / "in.png"), "-o", str(out), "--engine", "tensorrt", block_tensorrt=True)
    assert result.returncode == 2, result.stderr
    assert "remaster[tensorrt]" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bench_says_where_tensorrt_is_or_which_extra_to_install():
    result = remaster("bench", "--device", "cpu", "--size", "64x48", "--frames", "1", block_tensorrt=True)
    assert result.returncode == 0, result.stderr
    assert "TensorRT: none (pip install 'remaster[tensorrt]')" in result.stdout


# -- on a GPU with TensorRT -------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)")


def _tensorrt_or_skip():
    pytest.importorskip("tensorrt", reason="needs TensorRT (pip install 'remaster[tensorrt]')")


@pytest.fixture
def engine_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path_factory.getbasetemp() / "tensorrt-home"))


def _engines(name: str, tile: str = "0", precision: str = "fp16"):
    from remaster.engines.tensorrt_engine.upscaler import TensorRtUpscaler
    from remaster.engines.torch_engine.upscaler import TorchUpscaler

    settings = EngineSettings("cuda", precision, tile, engine="tensorrt")
    reference = TorchUpscaler(load_model(name), EngineSettings("cuda", "fp32", "0"))
    return TensorRtUpscaler(load_model(name), settings), reference


@needs_gpu
@pytest.mark.parametrize(
    "name", ["2x-conservative", "4x-conservative", "2x-esrgan-animevideo", "2x-waifu2x-art-no-denoise"]
)
def test_tensorrt_fp16_against_torch_fp32(engine_home, name):
    _tensorrt_or_skip()
    engine, reference = _engines(name)
    x = rgb(picture("anime", 45, 67)).cuda()
    torch.backends.cudnn.allow_tf32 = False
    want = reference.upscale_rgb(x)
    got = engine.upscale_rgb(x)
    assert agreement_db(got.cpu(), want.cpu()) >= 50
    again, _ = _engines(name)
    again.upscale_rgb(x)
    assert again.built == 0, "the second engine comes from the cache"


@needs_gpu
def test_tensorrt_tiles_equal_the_whole_frame(engine_home):
    _tensorrt_or_skip()
    x = rgb(picture("anime", 136, 200)).cuda()
    whole, _ = _engines("2x-conservative", precision="fp32")
    tiled, _ = _engines("2x-conservative", tile="64", precision="fp32")
    assert agreement_db(tiled.upscale_rgb(x).cpu(), whole.upscale_rgb(x).cpu()) >= 80
    assert any(part.startswith("stage") for part, _ in tiled.graphs)

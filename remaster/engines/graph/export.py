"""A network part to ONNX, and the check that a runtime's graph computes what torch does.

torch.onnx's dynamo exporter, not the TorchScript one: the networks add their residuals in place
on views (`out.unflatten(...).add_(x)`: each input pixel to its block of the output, without
making the nearest-neighbour upscale), and the TorchScript exporter drops a write into a view.
realesr-animevideov3 2x and 4x exported that way lose the residual: 6.4 and 6.6 dB against torch
on a 50x37 frame; through the dynamo exporter, which turns in-place ops into plain ones first,
124-125 dB (measured with OpenVINO 2026.4.1 CPU f32, torch 2.13). tests/test_graph_export.py
keeps that measurement.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from remaster.core.errors import UsageError
from remaster.core.machine import installed_version
from remaster.engines.graph.cache import GraphKey

# ONNX opset 18: the dynamo exporter's own (torch 2.13), read by OpenVINO 2026 and TensorRT 10.
OPSET = 18
# What an exported graph must reach against torch fp32 on its export input to be kept: the
# acceptance bar for whole frames (issue 20). fp32 graphs measured 120-140 dB.
VERIFY_DB = 80.0


class GraphExportError(UsageError):
    """A network part could not be exported, or its graph computes something else than torch.

    Exit 2 where the user asked for a graph engine; `--engine auto` runs the torch engine instead."""


def exporter_version() -> str:
    """What a graph file depends on besides the weights and shapes: the key's `exporter`."""
    onnx, onnxscript = installed_version("onnx"), installed_version("onnxscript")
    return f"torch {torch.__version__}, onnxscript {onnxscript}, onnx {onnx}, opset {OPSET}"


def float32_weights(network: nn.Module) -> list[str]:
    """The parameters a network keeps in float32 at any precision (its `set_precision` leaves them):
    what a graph runtime must keep in float32 when it lowers the graph's precision."""
    if not hasattr(network, "set_precision"):
        return []
    probe = copy.deepcopy(network).set_precision(torch.bfloat16)
    return [name for name, p in probe.named_parameters() if p.dtype == torch.float32]


def weights_sha256(module: nn.Module) -> str:
    """The sha256 of a network's weights as loaded: every parameter and buffer by name, in float32.

    The same weights give the same digest whichever file (ncnn, .pth, .safetensors) they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def graph_key(architecture: str, scale: int, weights: str, part: str, shapes) -> GraphKey:
    """The key of a float32 graph of `part` for inputs of `shapes` ((name, shape), ...): one file that
    every runtime (OpenVINO, TensorRT) reads, so both engines key it alike."""
    return GraphKey(weights, f"{architecture} {scale}x", part, tuple(shapes), "fp32", exporter_version())


def export_onnx(
    module: nn.Module, example: Sequence[Tensor], input_names: Sequence[str], output_names: Sequence[str], path
) -> None:
    """`module(*example)` as one ONNX file at `path`, at the example's fixed shapes, weights inside.

    The exporter's progress lines (it prints them on stdout) are kept out of the user's terminal;
    a failure is a GraphExportError naming the module and the exporter's first line."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; say so before it does)
    except ImportError:
        raise GraphExportError(
            "exporting a network to ONNX needs onnx and onnxscript"
            " (pip install 'remaster[openvino]' or 'remaster[tensorrt]')"
        ) from None
    chatter = io.StringIO()
    # Its warnings go through logging, whose handlers hold the real stderr: quiet them for the export.
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), torch.no_grad():
            program = torch.onnx.export(
                module.eval(),
                tuple(example),
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            program.save(str(path))
    except Exception as exc:  # the exporter raises many kinds; each one means: this part does not export
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GraphExportError(f"{type(module).__name__} does not export to ONNX: {first}") from exc
    finally:
        logging.disable(logging.NOTSET)


def agreement_db(got: Tensor | np.ndarray, want: Tensor) -> float:
    """PSNR of `got` against `want` with the peak |want| as the signal (feature maps are not in [0, 1])."""
    got_t = torch.as_tensor(got).double()
    want_t = want.detach().double()
    if got_t.shape != want_t.shape:
        return -math.inf
    peak = float(want_t.abs().max()) or 1.0
    mse = float(((got_t - want_t) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)

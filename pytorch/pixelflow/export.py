"""Export to ONNX: one graph with dynamic batch, height and width that serves every cascade stage.

The contract (also in pixelflow.json): inputs `x` float32 [B,C,H,W], `timestep` float32 [B],
`class_labels` int64 [B]; output `velocity` float32 [B,C,H,W]. Weights are float32, or float16 for
the matrix products only (see `to_mixed_fp16`); inputs and outputs stay float32 either way.
"""

from __future__ import annotations

import gc
import inspect
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .network import ATTENTION_EXPORTS, Attention, PixelFlowNet

OPSET = 17
INPUTS = ("x", "timestep", "class_labels")
OUTPUTS = ("velocity",)
EXTERNAL_DATA_SUFFIX = ".data"
# Weights up to this size stay inside model.onnx (one file; the embedded model is 5.5 MB). Larger
# ones go to one external data file: onnxruntime then reads them straight from that file instead of
# through the protobuf parser, and loads a 138 MB model in 0.77 s instead of 1.35 s (README,
# `pnpm bench:cpu`). Protobuf could not hold more than 2 GiB inline anyway.
INLINE_LIMIT_BYTES = 32 * 1024 * 1024
_HALF_OPS = ("MatMul", "Gemm", "Conv", "MultiHeadAttention")
# onnxruntime's contrib operators (MultiHeadAttention), version 1.
CONTRIB_DOMAIN = "com.microsoft"


def export_onnx(model: PixelFlowNet, out_file: Path, dtype: str = "fp32", attention: str = "plain") -> str | None:
    """Write `out_file` (and `out_file` + '.data' when the weights are too big to inline).

    Returns the external data file's name, or None. `model` may be released by the caller afterwards;
    the export goes through a scratch folder because torch writes one file per tensor for big models.
    `attention` is one of ATTENTION_EXPORTS.
    """
    if attention not in ATTENTION_EXPORTS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_EXPORTS)}, got {attention!r}")
    for module in model.modules():
        if isinstance(module, Attention):
            module.onnx_attention = attention
    config = model.config
    side = config.stage_resolutions()[min(1, config.num_stages - 1)]
    example = (torch.randn(2, config.in_channels, side, side), torch.tensor([10.0, 500.0]),
               torch.tensor([0, config.null_label], dtype=torch.int64))
    dynamic = {"x": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
               "class_labels": {0: "batch"}, "velocity": {0: "batch", 2: "height", 3: "width"}}
    with tempfile.TemporaryDirectory(prefix="pixelflow-export-", dir=Path(out_file).parent) as scratch:
        traced_file = Path(scratch) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about shape arithmetic; the dynamic-shape test proves it is tracked.
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, str(traced_file), input_names=list(INPUTS),
                              output_names=list(OUTPUTS), dynamic_axes=dynamic, opset_version=OPSET,
                              do_constant_folding=True, **exporter_choice(),
                              **({"custom_opsets": {CONTRIB_DOMAIN: 1}} if attention == "multihead" else {}))
        del model
        gc.collect()
        proto = onnx.load(str(traced_file), load_external_data=False)
        _declare_output_shape(proto, config.out_channels)
        half_initializers = to_mixed_fp16(proto) if dtype == "fp16" else set()
        return _write_with_weights(proto, Path(scratch), half_initializers, Path(out_file))


def exporter_choice() -> dict[str, bool]:
    """Pin the TorchScript (tracing) exporter, the one this graph is tested with.

    PyTorch 2.9 made the dynamo-based exporter the default of `torch.onnx.export`; it builds a
    different graph (and handles `dynamic_axes` differently). PyTorch 1.13 has only the tracing
    exporter and no `dynamo` argument, so the argument is passed only where it exists.
    """
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _declare_output_shape(proto: onnx.ModelProto, channels: int) -> None:
    # The tracer names the output's channel axis after a Reshape; say what it is, like the input's.
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, ("batch", channels, "height", "width")):
        dim.Clear()
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value


def to_mixed_fp16(proto: onnx.ModelProto) -> set[str]:
    """Run MatMul, Gemm, Conv (and a fused MultiHeadAttention) in float16 and everything else in
    float32, like torch autocast.

    Norms, softmax, RoPE and the adaLN modulation stay float32 (the reference keeps them in float32
    under autocast too); the products, which hold nearly all weights and FLOPs, take float16 inputs
    and their results are cast back. Returns the initializers to store as float16.
    """
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    halved = {name for name, tensor in initializers.items()
              if tensor.data_type == TensorProto.FLOAT and consumers.get(name)
              and all(n.op_type in _HALF_OPS for n in consumers[name])}
    graph_outputs = {o.name for o in graph.output}
    # The float16 twin of a float32 tensor: a Cast of it, or the result of a half op before the Cast
    # back. A half op fed by another reads its float16 result directly (no round trip, no name clash).
    fp16_of: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type not in _HALF_OPS:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if not name or name in halved:
                continue
            if name not in fp16_of:
                fp16_of[name] = f"{name}__fp16"
                nodes.append(helper.make_node("Cast", [name], [fp16_of[name]], to=TensorProto.FLOAT16,
                                              name=f"{name}__to_fp16"))
            node.input[i] = fp16_of[name]
        result = node.output[0]
        node.output[0] = fp16_of[result] = f"{result}__fp16"
        nodes.append(node)
        if result in graph_outputs or any(n.op_type not in _HALF_OPS for n in consumers.get(result, [])):
            nodes.append(helper.make_node("Cast", [node.output[0]], [result], to=TensorProto.FLOAT,
                                          name=f"{result}__to_fp32"))
    del graph.node[:]
    graph.node.extend(nodes)
    return halved


def _write_with_weights(proto: onnx.ModelProto, source_dir: Path, half: set[str], out_file: Path) -> str | None:
    total = 0
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor, base_dir=str(source_dir))
        if tensor.name in half:
            array = array.astype(np.float16)
        tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
        total += array.nbytes
    if total <= INLINE_LIMIT_BYTES:
        onnx.save_model(proto, str(out_file))
        return None
    location = out_file.name + EXTERNAL_DATA_SUFFIX
    onnx.save_model(proto, str(out_file), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)
    return location

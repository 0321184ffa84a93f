"""Conversion to the ONNX contract, and what a user sees when it cannot be done."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto

from pixelflow import export
from pixelflow.checkpoint import write_random_checkpoint
from pixelflow.config import CheckpointError, ModelConfig
from pixelflow.convert import UsageError, convert
from pixelflow.network import PixelFlowNet

from conftest import PYTORCH_DIR


@pytest.fixture
def checkpoint(tmp_path, small_config):
    return write_random_checkpoint(tmp_path / "ckpt", small_config, seed=5)


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_conversion_writes_the_onnx_contract_and_manifest(checkpoint, tmp_path, small_config):
    out = tmp_path / "model"
    manifest = convert(checkpoint, out, name="small")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "pixelflow.json"]
    assert json.loads((out / "pixelflow.json").read_text()) == manifest
    proto = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inputs = {i.name: i for i in proto.graph.input}
    assert list(inputs) == ["x", "timestep", "class_labels"]
    assert inputs["x"].type.tensor_type.elem_type == TensorProto.FLOAT
    assert inputs["timestep"].type.tensor_type.elem_type == TensorProto.FLOAT
    assert inputs["class_labels"].type.tensor_type.elem_type == TensorProto.INT64
    assert _dims(inputs["x"]) == ["batch", 3, "height", "width"]
    assert _dims(inputs["timestep"]) == ["batch"] and _dims(inputs["class_labels"]) == ["batch"]
    (output,) = proto.graph.output
    assert output.name == "velocity" and output.type.tensor_type.elem_type == TensorProto.FLOAT
    assert _dims(output) == ["batch", 3, "height", "width"]
    assert manifest["name"] == "small" and manifest["dtype"] == "fp32" and manifest["external_data_file"] is None
    assert [s["resolution"] for s in manifest["stages"]] == small_config.stage_resolutions()
    assert manifest["classes"] == {"names": [f"class {i}" for i in range(5)], "null_label": 5}
    assert manifest["architecture"]["parameters"] == PixelFlowNet(small_config, device="meta").num_parameters()
    assert manifest["defaults"]["steps"] == [10, 10, 10]


def test_a_folder_with_the_released_config_layout_converts(tmp_path, small_config):
    # The released file's five sections, training values included, around a small network.
    folder = tmp_path / "released-layout"
    write_random_checkpoint(folder, small_config, seed=2)
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["train"] = {"lr": "1e-4", "weight_decay": 0.0, "epochs": 10}
    raw["data"].update(root="/datasets/ILSVRC2012/train", center_crop=False, expand_ratio=1.125, num_workers=4,
                       batch_size=4)
    raw["seed"] = 42
    (folder / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    manifest = convert(folder, tmp_path / "model")
    assert [s["resolution"] for s in manifest["stages"]] == small_config.stage_resolutions()
    assert (tmp_path / "model" / "model.onnx").is_file()


def test_fp16_runs_matrix_products_in_half_and_keeps_float32_io(checkpoint, tmp_path):
    manifest = convert(checkpoint, tmp_path / "half", dtype="fp16")
    proto = onnx.load(str(tmp_path / "half" / "model.onnx"))
    onnx.checker.check_model(proto)
    assert manifest["dtype"] == "fp16"
    types = {t.name: t.data_type for t in proto.graph.initializer}
    products = [n for n in proto.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    assert products
    for node in products:
        for name in node.input:
            assert types.get(name, TensorProto.FLOAT16) == TensorProto.FLOAT16 or name.endswith("__fp16")
    elements = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
    halved = sum(n for name, n in elements.items() if types[name] == TensorProto.FLOAT16)
    assert halved > 0.8 * sum(elements.values())  # nearly all weights feed matrix products
    assert {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}["x"] == TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    fp32 = convert(checkpoint, tmp_path / "full")
    assert fp32["source"]["weights_sha256"] == manifest["source"]["weights_sha256"]


def test_big_models_get_one_external_data_file(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "INLINE_LIMIT_BYTES", 0)
    manifest = convert(checkpoint, tmp_path / "big")
    assert manifest["external_data_file"] == "model.onnx.data"
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["model.onnx", "model.onnx.data", "pixelflow.json"]
    proto = onnx.load(str(tmp_path / "big" / "model.onnx"))  # loads the data file beside it
    onnx.checker.check_model(proto)
    inline = onnx.load(str(tmp_path / "big" / "model.onnx"), load_external_data=False)
    assert any(t.data_location == TensorProto.EXTERNAL for t in inline.graph.initializer)


def test_existing_output_is_kept_unless_forced(checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="--force"):
        convert(checkpoint, out)
    assert (out / "precious.txt").read_text() == "keep me"
    convert(checkpoint, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "pixelflow.json"]


def test_a_failed_conversion_writes_nothing(checkpoint, tmp_path):
    (checkpoint / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        convert(checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_failure_during_export_removes_the_staging_folder(checkpoint, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr("pixelflow.convert.export_onnx", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        convert(checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_class_names(checkpoint, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nfox\nowl\nelk\n")
    manifest = convert(checkpoint, tmp_path / "named", class_names_file=names)
    assert manifest["classes"]["names"] == ["cat", "dog", "fox", "owl", "elk"]
    names.write_text("cat\ndog\n")
    with pytest.raises(CheckpointError, match="has 2 class names, the model has 5 classes"):
        convert(checkpoint, tmp_path / "named2", class_names_file=names)


def test_imagenet_models_get_torchvision_names_and_open_on_daisy(tmp_path):
    pytest.importorskip("torchvision", reason="python3-torchvision supplies the ImageNet names")
    config = ModelConfig(patch_size=2, num_attention_heads=1, attention_head_dim=4, depth=1, num_classes=1000,
                         resolution=8, num_stages=2)
    manifest = convert(write_random_checkpoint(tmp_path / "in1k", config), tmp_path / "out")
    names = manifest["classes"]["names"]
    assert len(names) == 1000 and names[985] == "daisy" and manifest["defaults"]["class_label"] == 985
    assert manifest["classes"]["null_label"] == 1000


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pixelflow.convert", *map(str, args)], cwd=PYTORCH_DIR,
                          capture_output=True, text=True)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, checkpoint):
    missing = _cli(tmp_path / "nope", tmp_path / "out")
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and missing.stderr.startswith("pixelflow convert: ")
    bad_dtype = _cli(checkpoint, tmp_path / "out", "--dtype", "int8")
    assert bad_dtype.returncode == 2 and "fp32 or fp16" in bad_dtype.stderr
    ok = _cli(checkpoint, tmp_path / "out")
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and (tmp_path / "out" / "model.onnx").is_file()


def test_sampling_defaults_can_be_chosen_per_model(checkpoint, tmp_path):
    manifest = convert(checkpoint, tmp_path / "tuned", cfg_scale=2.5, steps=[4, 6, 8])
    assert manifest["defaults"]["cfg_scale"] == 2.5 and manifest["defaults"]["steps"] == [4, 6, 8]
    assert convert(checkpoint, tmp_path / "one", steps=[7])["defaults"]["steps"] == [7, 7, 7]
    for kwargs, message in [({"steps": [4, 6]}, "needs 1 or 3 numbers"), ({"steps": [0]}, "between 1 and 100"),
                            ({"cfg_scale": 30.0}, "between 1 and 25")]:
        with pytest.raises(UsageError, match=message):
            convert(checkpoint, tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()
    ok = _cli(checkpoint, tmp_path / "cli", "--default-cfg", "3", "--default-steps", "5,5,9")
    assert ok.returncode == 0, ok.stderr
    written = json.loads((tmp_path / "cli" / "pixelflow.json").read_text())["defaults"]
    assert written["cfg_scale"] == 3.0 and written["steps"] == [5, 5, 9]


def test_what_the_config_decides_is_refused_before_the_weights_are_read(checkpoint, tmp_path):
    # A folder whose weights are unreadable: the steps error must come first, so it came without them.
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(checkpoint / "config.yaml", config_only / "config.yaml")
    (config_only / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(UsageError, match="needs 1 or 3 numbers"):
        convert(config_only, tmp_path / "out", steps=[4, 6])


def test_the_tracing_exporter_is_pinned_where_torch_offers_another(monkeypatch):
    import torch

    real = torch.onnx.export
    has_choice = "dynamo" in __import__("inspect").signature(real).parameters
    assert export.exporter_choice() == ({"dynamo": False} if has_choice else {})

    def export_with_a_choice(model, args, f, dynamo=True, **kwargs):  # torch >= 2.5's signature, in short
        raise AssertionError("not called")

    monkeypatch.setattr(torch.onnx, "export", export_with_a_choice)
    assert export.exporter_choice() == {"dynamo": False}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_multihead_attention_export_writes_one_fused_node_per_block(checkpoint, tmp_path, small_config, dtype):
    manifest = convert(checkpoint, tmp_path / "fused", dtype=dtype, attention="multihead")
    proto = onnx.load(str(tmp_path / "fused" / "model.onnx"))
    onnx.checker.check_model(proto)
    fused = [n for n in proto.graph.node if n.op_type == "MultiHeadAttention"]
    assert len(fused) == small_config.depth
    assert all(n.domain == export.CONTRIB_DOMAIN for n in fused)
    assert [a.i for n in fused for a in n.attribute if a.name == "num_heads"] == [small_config.num_attention_heads] * small_config.depth
    assert not any(n.op_type == "Softmax" for n in proto.graph.node)
    assert {(o.domain, o.version) for o in proto.opset_import} >= {(export.CONTRIB_DOMAIN, 1)}
    assert manifest["onnx"]["attention"] == "multihead"
    if dtype == "fp16":
        # Fed by a float16 cast and read directly by the float16 output projection: no round trip.
        outputs = {o for n in fused for o in n.output}
        assert all(o.endswith("__fp16") for o in outputs)
        assert not any(n.op_type == "Cast" and n.input[0] in outputs for n in proto.graph.node)


def test_plain_exports_do_not_record_attention(checkpoint, tmp_path):
    assert "attention" not in convert(checkpoint, tmp_path / "plain")["onnx"]
    with pytest.raises(UsageError, match="--attention must be plain or multihead, got 'flash'"):
        convert(checkpoint, tmp_path / "bad", attention="flash")

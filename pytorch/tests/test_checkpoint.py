"""Official-format folders: strict round trip, and one clear sentence for every way a folder is wrong."""

import pytest
import torch
import yaml

from pixelflow.checkpoint import load_checkpoint, write_random_checkpoint
from pixelflow.config import XL, CheckpointError, config_from_official
from pixelflow.network import PixelFlowNet


@pytest.fixture
def checkpoint(tmp_path, small_config):
    return write_random_checkpoint(tmp_path / "ckpt", small_config, seed=3)


def test_round_trip_loads_strictly_with_every_weight_in_place(checkpoint, small_config):
    loaded = load_checkpoint(checkpoint)
    assert loaded.config == small_config
    saved = torch.load(checkpoint / "model.pt", weights_only=True)
    state = loaded.model.state_dict()
    assert state.keys() == saved.keys()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    assert len(loaded.weights_sha256) == 64
    # strict=True on a freshly built model accepts the file as the authors' loader would
    PixelFlowNet(small_config).load_state_dict(saved, strict=True)


def test_loaded_model_computes_like_a_normally_loaded_one(checkpoint, small_config):
    reference = PixelFlowNet(small_config)
    reference.load_state_dict(torch.load(checkpoint / "model.pt", weights_only=True), strict=True)
    x = torch.randn(2, 3, 8, 8)
    t, y = torch.tensor([1.0, 600.0]), torch.tensor([0, 5])
    with torch.no_grad():
        assert torch.equal(load_checkpoint(checkpoint).model(x, t, y), reference.eval()(x, t, y))


# The released config.yaml (configs/pixelflow_xl_c2i.yaml in the authors' repository), key for key as
# PIXELFLOW.md section 2 lists it. `lr: 1e-4` is kept as written: YAML 1.1 reads it as a string.
RELEASED_CONFIG = """\
model:
  target: pixelflow.model.PixelFlowModel
  params:
    num_attention_heads: 16
    attention_head_dim: 72
    in_channels: 3
    out_channels: 3
    depth: 28
    num_classes: 1000
    patch_size: 4
    attention_bias: true

scheduler:
  num_train_timesteps: 1000
  num_stages: 4
  pyramid_shift: false

train:
  lr: 1e-4
  weight_decay: 0.0
  epochs: 10

data:
  root: /datasets/ILSVRC2012/train
  center_crop: false
  resolution: 256
  expand_ratio: 1.125
  num_workers: 4
  batch_size: 4

seed: 42
"""


def _keys(raw):
    return {k: _keys(v) if isinstance(v, dict) else None for k, v in raw.items()}


def test_the_released_config_is_accepted_unmodified():
    assert config_from_official(yaml.safe_load(RELEASED_CONFIG)) == XL


def test_written_config_yaml_has_the_released_layout_key_for_key(checkpoint):
    written = yaml.safe_load((checkpoint / "config.yaml").read_text())
    assert _keys(written) == _keys(yaml.safe_load(RELEASED_CONFIG))
    assert list(written) == ["model", "scheduler", "train", "data", "seed"]
    assert written["scheduler"]["pyramid_shift"] is False


def test_committed_checkpoints_have_the_released_layout(fixtures_dir):
    for folder in (fixtures_dir / "tiny-checkpoint", fixtures_dir.parents[1] / "models" / "pixelflow-mnist" / "checkpoint"):
        assert _keys(yaml.safe_load((folder / "config.yaml").read_text())) == _keys(yaml.safe_load(RELEASED_CONFIG)), folder


@pytest.mark.parametrize("value, shown", [(True, "true"), (0, "0"), ("false", "'false'"), (None, "null")])
def test_a_pyramid_shift_other_than_false_is_refused_naming_key_and_value(value, shown):
    raw = yaml.safe_load(RELEASED_CONFIG)
    raw["scheduler"]["pyramid_shift"] = value
    with pytest.raises(CheckpointError) as error:
        config_from_official(raw)
    assert f"scheduler.pyramid_shift: {shown}," in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_scheduler_keys_are_still_refused():
    raw = yaml.safe_load(RELEASED_CONFIG)
    raw["scheduler"]["gamma"] = -0.5
    with pytest.raises(CheckpointError, match="unknown fields in scheduler: gamma"):
        config_from_official(raw)


def test_training_values_are_written_where_known(tmp_path, small_config):
    raw = small_config.to_official_yaml_dict({"lr": 5e-4, "batch_size": 240, "seed": 7})
    assert raw["train"] == {"lr": 5e-4, "weight_decay": None, "epochs": None}
    assert raw["data"]["batch_size"] == 240 and raw["data"]["resolution"] == small_config.resolution
    assert raw["seed"] == 7
    with pytest.raises(ValueError, match="not a training key of config.yaml: depth"):
        small_config.to_official_yaml_dict({"depth": 3})


def _edit_config(folder, edit):
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    edit(raw)
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def _edit_state(folder, edit):
    state = torch.load(folder / "model.pt", weights_only=True)
    edit(state)
    torch.save(state, folder / "model.pt")


BROKEN = {
    "no config": (lambda f: (f / "config.yaml").unlink(), "has no config.yaml"),
    "no weights": (lambda f: (f / "model.pt").unlink(), "has no model.pt"),
    "bad yaml": (lambda f: (f / "config.yaml").write_text("model: [unclosed"), "not valid YAML"),
    "unknown param": (lambda f: _edit_config(f, lambda r: r["model"]["params"].update(qk_norm=True)),
                      "unknown fields in model.params: qk_norm"),
    "unknown section": (lambda f: _edit_config(f, lambda r: r.update(vae={"scale": 1})),
                        "unknown top-level fields: vae"),
    "missing field": (lambda f: _edit_config(f, lambda r: r["model"]["params"].pop("depth")),
                      "missing model.params.depth"),
    "bad value": (lambda f: _edit_config(f, lambda r: r["model"]["params"].update(depth=0)),
                  "depth must be a positive integer"),
    "renamed key": (lambda f: _edit_state(f, lambda s: s.update(foo=s.pop("proj_out_2.bias"))),
                    "1 missing tensor(s) (proj_out_2.bias); 1 unexpected tensor(s) (foo)"),
    "shape mismatch": (lambda f: _edit_state(f, lambda s: s.update({"proj_out_2.bias": torch.zeros(7)})),
                       "shape mismatch: proj_out_2.bias is (7,), expected (12,)"),
    "not a state dict": (lambda f: torch.save({"model": {}, "ema": {}}, f / "model.pt"),
                         "not a plain state dict of tensors (found: model, ema)"),
    "not torch": (lambda f: (f / "model.pt").write_bytes(b"not a checkpoint"), "not a loadable PyTorch state dict"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_folders_fail_with_one_clear_sentence(checkpoint, case):
    breaker, message = BROKEN[case]
    breaker(checkpoint)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(checkpoint)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_not_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        load_checkpoint(tmp_path / "missing")


def test_training_only_sections_are_ignored(small_config):
    raw = small_config.to_official_yaml_dict()
    raw["train"] = {"lr": 1e-4, "epochs": 10}
    raw["seed"] = 42
    raw["data"]["root"] = "/data/imagenet"
    assert config_from_official(raw) == small_config


def test_shape_mismatch_names_the_tensor_and_both_shapes(checkpoint):
    _edit_state(checkpoint, lambda s: s.update({"class_embedder.embedding_table.weight": torch.zeros(3, 16)}))
    with pytest.raises(CheckpointError, match=r"class_embedder.embedding_table.weight is \(3, 16\), expected \(6, 16\)"):
        load_checkpoint(checkpoint)

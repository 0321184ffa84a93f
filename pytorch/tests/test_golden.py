"""The committed golden vectors are what this reference computes from the committed tiny checkpoint."""

import json

import numpy as np
import pytest
import torch

from pixelflow.checkpoint import load_checkpoint
from pixelflow.convert import convert
from pixelflow.golden import TINY, velocity_fn
from pixelflow.sampler import Noise, SamplerParams, sample


@pytest.fixture(scope="module")
def model(fixtures_dir):
    loaded = load_checkpoint(fixtures_dir / "tiny-checkpoint")
    assert loaded.config == TINY
    return loaded.model


def _entries(folder):
    return json.loads((folder / "index.json").read_text())


def test_fixtures_stay_small(fixtures_dir):
    total = sum(p.stat().st_size for d in ("tiny", "tiny-checkpoint") for p in (fixtures_dir / d).rglob("*")
                if p.is_file())
    assert total < 2_000_000


def test_forward_vectors(model, fixtures_dir):
    folder = fixtures_dir / "tiny" / "golden" / "forward"
    entries = _entries(folder)
    assert {(e["stage"], e["batch"]) for e in entries} == {(s, b) for s in range(4) for b in (1, 3)}
    for e in entries:
        load = lambda suffix: torch.from_numpy(np.load(folder / f"{e['name']}.{suffix}.npy"))  # noqa: E731
        x = load("x")
        assert x.shape == (e["batch"], 3, e["height"], e["width"]) and x.dtype == torch.float32
        assert load("class_labels").dtype == torch.int64
        with torch.no_grad():
            v = model(x, load("timestep"), load("class_labels"))
        assert torch.allclose(v, load("velocity"), atol=1e-5), e["name"]


def test_sampler_runs(model, fixtures_dir):
    folder = fixtures_dir / "tiny" / "golden" / "runs"
    entries = _entries(folder)
    assert {e["solver"] for e in entries} == {"euler", "dopri5"}
    assert {e["cfg_scale"] for e in entries} == {1.0, 4.0} and {e["noise_shift"] for e in entries} == {1.0, 3.0}
    assert any(len(set(e["steps"])) > 1 for e in entries)
    for e in entries:
        run = folder / e["name"]
        load = lambda name: torch.from_numpy(np.load(run / f"{name}.npy"))  # noqa: E731
        noise = Noise(load("noise_stage0"), [load(f"noise_block_{k}") for k in range(1, 4)])
        params = SamplerParams(steps=e["steps"], cfg_scale=e["cfg_scale"], noise_shift=e["noise_shift"],
                               solver=e["solver"], rtol=e["rtol"], atol=e["atol"])
        result = sample(velocity_fn(model), TINY, torch.tensor(e["class_labels"]), params, noise)
        tolerance = 1e-4 if e["solver"] == "euler" else 1e-3
        for k, state in enumerate(result.stage_ends):
            assert torch.allclose(state, load(f"stage_{k}"), atol=tolerance), (e["name"], k)
        assert (result.images.int() - load("image").int()).abs().max() <= 1, e["name"]
        if e["solver"] == "euler":
            assert result.model_calls == e["model_calls"] == sum(e["steps"])


def test_committed_conversion_is_reproducible(fixtures_dir, tmp_path):
    fresh = convert(fixtures_dir / "tiny-checkpoint", tmp_path / "tiny", name="tiny-random")
    committed = json.loads((fixtures_dir / "tiny" / "pixelflow.json").read_text())
    fresh["source"].pop("torch_version")
    committed["source"].pop("torch_version")
    assert fresh == committed

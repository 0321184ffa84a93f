"""Golden test vectors: a tiny random PixelFlow, its ONNX conversion, and reference outputs.

`python -m pixelflow.golden test/fixtures` writes
  tiny-checkpoint/      official-format folder (config.yaml, model.pt) with random weights
  tiny/                 its conversion (model.onnx, pixelflow.json) by our own converter
  tiny/golden/forward/  single forward passes at every stage size, batch 1 and 3
  tiny/golden/runs/     whole reference-sampler runs: noise in, every stage's end state and the image out
All arrays are .npy; each folder has an index.json. Noise comes from NumPy's PCG64 so that it does not
depend on the torch version.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, write_random_checkpoint
from .config import ModelConfig
from .convert import convert
from .sampler import Noise, SamplerParams, block_noise_from_normals, sample
from .scheduler import stages

TINY = ModelConfig(in_channels=3, out_channels=3, patch_size=2, num_attention_heads=2, attention_head_dim=16,
                   depth=2, num_classes=10, resolution=32, num_stages=4, num_train_timesteps=1000)
WEIGHTS_SEED = 20250410
DATA_SEED = 7
FORWARD_BATCHES = (1, 3)
# Dopri5 goldens use a tight tolerance. At the default rtol 1e-3 the solver's error estimate is a
# small difference of float32 velocities, so two correct implementations (torch here, onnxruntime in
# TypeScript) soon take different steps, and their results then differ by the solver's own global
# error: about 1e-2 on this random-weight model. At rtol 1e-5 the result is fixed by the ODE to ~1e-4.
DOPRI5_GOLDEN_TOLERANCE = {"rtol": 1e-5, "atol": 1e-8}
RUNS = (
    # name, solver, cfg, shift, steps per stage, class labels
    ("euler_cfg1_shift1", "euler", 1.0, 1.0, (10, 10, 10, 10), (3, 7)),
    ("euler_cfg4_shift1_uneven", "euler", 4.0, 1.0, (3, 7, 1, 5), (3, 7)),
    ("euler_cfg4_shift3_uneven", "euler", 4.0, 3.0, (6, 2, 9, 4), (0, 5, 9)),
    ("euler_cfg1_shift3", "euler", 1.0, 3.0, (5, 5, 5, 5), (1, 8)),
    ("dopri5_cfg1", "dopri5", 1.0, 1.0, (10, 10, 10, 10), (3, 7)),
    ("dopri5_cfg4_shift3", "dopri5", 4.0, 3.0, (10, 10, 10, 10), (2, 6)),
)


def velocity_fn(model):
    def run(x, timestep, labels):
        with torch.no_grad():
            return model(x, timestep, labels)
    return run


def run_noise(config: ModelConfig, batch: int, rng: np.random.Generator) -> Noise:
    sizes = config.stage_resolutions()
    c = config.in_channels

    def normals(side: int) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal((batch, c, side, side)).astype(np.float32))

    return Noise(normals(sizes[0]), [block_noise_from_normals(normals(s)) for s in sizes[1:]])


def write_forward(model, config: ModelConfig, folder: Path, rng: np.random.Generator) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for stage, side in zip(stages(config.num_stages, config.num_train_timesteps), config.stage_resolutions()):
        for batch in FORWARD_BATCHES:
            name = f"stage{stage.index}_b{batch}"
            x = rng.standard_normal((batch, config.in_channels, side, side)).astype(np.float32)
            t = rng.uniform(stage.timestep_first, stage.timestep_last, batch).astype(np.float32)
            y = rng.integers(0, config.null_label + 1, batch).astype(np.int64)
            y[-1] = config.null_label  # the null label goes through the same table
            with torch.no_grad():
                v = model(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
            for suffix, array in (("x", x), ("timestep", t), ("class_labels", y), ("velocity", v)):
                np.save(folder / f"{name}.{suffix}.npy", array)
            entries.append({"name": name, "stage": stage.index, "batch": batch, "height": side, "width": side})
    (folder / "index.json").write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def write_runs(model, config: ModelConfig, folder: Path, rng: np.random.Generator) -> list[dict]:
    entries = []
    for name, solver, cfg, shift, steps, labels in RUNS:
        run_dir = folder / name
        run_dir.mkdir(parents=True, exist_ok=True)
        noise = run_noise(config, len(labels), rng)
        tolerance = DOPRI5_GOLDEN_TOLERANCE if solver == "dopri5" else {}
        params = SamplerParams(steps=steps, cfg_scale=cfg, noise_shift=shift, solver=solver, **tolerance)
        result = sample(velocity_fn(model), config, torch.tensor(labels, dtype=torch.int64), params, noise)
        np.save(run_dir / "noise_stage0.npy", noise.stage0.numpy())
        for k, block in enumerate(noise.blocks, start=1):
            np.save(run_dir / f"noise_block_{k}.npy", block.numpy())
        for k, state in enumerate(result.stage_ends):
            np.save(run_dir / f"stage_{k}.npy", state.numpy())
        np.save(run_dir / "image.npy", result.images.numpy())
        entry = {"name": name, "class_labels": list(labels), "model_calls": result.model_calls,
                 **{k: v for k, v in asdict(params).items() if k != "steps"}, "steps": list(steps)}
        (run_dir / "params.json").write_text(json.dumps(entry, indent=2) + "\n")
        entries.append(entry)
    (folder / "index.json").write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def generate(fixtures: Path) -> None:
    checkpoint_dir, model_dir = fixtures / "tiny-checkpoint", fixtures / "tiny"
    for folder in (checkpoint_dir, model_dir):
        shutil.rmtree(folder, ignore_errors=True)
    write_random_checkpoint(checkpoint_dir, TINY, seed=WEIGHTS_SEED)
    convert(checkpoint_dir, model_dir, name="tiny-random")
    model = load_checkpoint(checkpoint_dir).model
    rng = np.random.default_rng(DATA_SEED)
    write_forward(model, TINY, model_dir / "golden" / "forward", rng)
    write_runs(model, TINY, model_dir / "golden" / "runs", rng)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.golden", description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", type=Path, help="the fixtures folder (test/fixtures)")
    generate(parser.parse_args(argv).fixtures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

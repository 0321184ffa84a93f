"""`python -m pixelflow.bench CHECKPOINT_DIR [options]`: time the reference sampler in PyTorch.

Prints one JSON line: {"seconds": [...one per timed run...], "warmup_seconds": s, "model_calls": n,
"threads": t, "device": d, "autocast": a, "load_seconds": s, "peak_memory_bytes": b or null}.
bench/sampler (CPU) and bench/gpu (the GPU run) set the same job on our TypeScript sampler beside it.

`--device cuda --autocast bf16` runs it the way the authors' demo does on a GPU (the network under
bf16 autocast, fused attention on PyTorch 2.x). `--noise DIR` takes the noise from the .npy files that
`pixelflow generate --dump` writes, so both samplers start from the same numbers; `--out FILE` saves
the final state (float32, the images before clamping) to compare them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import ModelConfig
from .sampler import Noise, SamplerParams, draw_noise, sample

AUTOCAST = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def read_noise(folder: Path, config: ModelConfig) -> Noise:
    """The noise files of `pixelflow generate --dump` (noise_stage0.npy, noise_block_<k>.npy)."""
    stage0 = torch.from_numpy(np.load(folder / "noise_stage0.npy"))
    blocks = [torch.from_numpy(np.load(folder / f"noise_block_{k}.npy")) for k in range(1, config.num_stages)]
    return Noise(stage0, blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.bench")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("--batch", type=int, default=1, help="images per job (ignored with --noise, which sets it)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--solver", choices=("euler", "dopri5"), default="euler")
    parser.add_argument("--labels", type=lambda text: [int(v) for v in text.split(",")], default=None,
                        help="class labels: one for every image, or one each (default: 0, 1, 2, ...)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N)")
    parser.add_argument("--autocast", choices=tuple(AUTOCAST), default="none",
                        help="run the network under autocast to this dtype (the demo: bf16 on a GPU)")
    parser.add_argument("--noise", type=Path, help="folder of noise .npy files to use for every run")
    parser.add_argument("--out", type=Path, help="save the last run's final state here (.npy, float32)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    started = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint_dir)
    config = checkpoint.config
    model = checkpoint.model.to(device)
    if cuda:
        torch.cuda.synchronize(device)
    load_seconds = time.perf_counter() - started
    autocast = AUTOCAST[args.autocast]

    def velocity(x, t, y):
        casting = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
        with torch.no_grad(), casting:
            return model(x, t, y)

    fixed = read_noise(args.noise, config) if args.noise else None
    batch = fixed.stage0.shape[0] if fixed else args.batch
    if args.labels is None:
        labels = torch.arange(batch) % config.num_classes
    elif len(args.labels) in (1, batch):
        labels = torch.tensor(args.labels * (batch if len(args.labels) == 1 else 1))
    else:
        parser.error(f"--labels has {len(args.labels)} entries for {batch} images")
    labels = labels.to(device)
    params = SamplerParams(steps=[args.steps] * config.num_stages, cfg_scale=args.cfg, noise_shift=args.shift,
                           solver=args.solver)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds, calls, warmup, result = [], 0, 0.0, None
    for repeat in range(args.repeats + 1):  # the first run warms up and is reported apart
        noise = fixed or draw_noise(config, batch, torch.Generator().manual_seed(repeat))
        noise = Noise(noise.stage0.to(device), [b.to(device) for b in noise.blocks])
        run_started = time.perf_counter()
        result = sample(velocity, config, labels, params, noise)
        if cuda:
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - run_started
        calls = result.model_calls
        if repeat:
            seconds.append(elapsed)
        else:
            warmup = elapsed
    if args.out and result is not None:
        np.save(args.out, result.stage_ends[-1].float().cpu().numpy())
    print(json.dumps({
        "seconds": seconds, "warmup_seconds": warmup, "model_calls": calls, "threads": torch.get_num_threads(),
        "device": str(device), "autocast": args.autocast, "batch": batch, "load_seconds": load_seconds,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m pixelflow.bench CHECKPOINT_DIR --batch B --steps N --cfg G --repeats R`: time the reference.

Prints one JSON line {"seconds": [...per run...], "model_calls": n, "threads": t} for bench/sampler,
which runs our TypeScript sampler on the converted model with the same settings and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .checkpoint import load_checkpoint
from .sampler import SamplerParams, draw_noise, sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.bench")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint_dir)
    model, config = checkpoint.model, checkpoint.config

    def velocity(x, t, y):
        with torch.no_grad():
            return model(x, t, y)

    labels = torch.arange(args.batch) % config.num_classes
    params = SamplerParams(steps=[args.steps] * config.num_stages, cfg_scale=args.cfg)
    seconds, calls = [], 0
    for repeat in range(args.repeats + 1):  # the first run warms up and is not reported
        noise = draw_noise(config, args.batch, torch.Generator().manual_seed(repeat))
        started = time.perf_counter()
        calls = sample(velocity, config, labels, params, noise).model_calls
        if repeat:
            seconds.append(time.perf_counter() - started)
    print(json.dumps({"seconds": seconds, "model_calls": calls, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

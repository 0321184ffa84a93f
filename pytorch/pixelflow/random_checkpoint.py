"""`python -m pixelflow.random_checkpoint OUT_DIR [--xl | --heads ... ]`: an official-format folder with
random weights, for tests and benchmarks that need a model of a given size but not a trained one."""

from __future__ import annotations

import argparse
import sys

from .checkpoint import write_random_checkpoint
from .config import XL, CheckpointError, ModelConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.random_checkpoint", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--xl", action="store_true", help="the released 677M configuration (2.7 GB)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = XL if args.xl else ModelConfig(
        in_channels=args.channels, out_channels=args.channels, patch_size=args.patch, num_attention_heads=args.heads,
        attention_head_dim=args.head_dim, depth=args.depth, num_classes=args.classes, resolution=args.resolution,
        num_stages=args.stages)
    try:
        write_random_checkpoint(args.out_dir, config, seed=args.seed)
    except CheckpointError as error:
        print(f"pixelflow random_checkpoint: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

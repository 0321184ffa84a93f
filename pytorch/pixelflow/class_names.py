"""Class names for a converted model: a file the user gives, ImageNet's from torchvision, or indices."""

from __future__ import annotations

from pathlib import Path

from .config import CheckpointError

IMAGENET_CLASSES = 1000


def resolve_class_names(num_classes: int, names_file: Path | None) -> list[str]:
    if names_file is not None:
        return read_names_file(Path(names_file), num_classes)
    if num_classes == IMAGENET_CLASSES:
        return imagenet_names()
    return [f"class {i}" for i in range(num_classes)]


def read_names_file(path: Path, num_classes: int) -> list[str]:
    if not path.is_file():
        raise CheckpointError(f"class names file {path} does not exist")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != num_classes:
        raise CheckpointError(f"{path} has {len(names)} class names, the model has {num_classes} classes")
    return names


def imagenet_names() -> list[str]:
    """The ImageNet-1k category names in index order, as torchvision ships them (never typed by us)."""
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except ImportError:
        raise CheckpointError("a 1000-class model needs the ImageNet class names from torchvision: "
                              "apt-get install python3-torchvision, or pass --class-names FILE") from None
    names = list(_IMAGENET_CATEGORIES)
    if len(names) != IMAGENET_CLASSES:
        raise CheckpointError(f"torchvision lists {len(names)} ImageNet classes, expected 1000")
    return names

"""The model configuration, and reading it from an official `config.yaml`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping


class CheckpointError(ValueError):
    """A checkpoint folder (or its config) is not what PixelFlow expects; the message names why."""


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int = 3
    out_channels: int = 3
    patch_size: int = 4
    num_attention_heads: int = 16
    attention_head_dim: int = 72
    depth: int = 28
    num_classes: int = 1000
    attention_bias: bool = True
    resolution: int = 256
    num_stages: int = 4
    num_train_timesteps: int = 1000

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def null_label(self) -> int:
        return self.num_classes

    def stage_resolutions(self) -> list[int]:
        return [self.resolution // 2 ** (self.num_stages - 1 - k) for k in range(self.num_stages)]

    def validate(self) -> "ModelConfig":
        for name in ("in_channels", "out_channels", "patch_size", "num_attention_heads",
                     "attention_head_dim", "depth", "num_classes", "resolution", "num_stages",
                     "num_train_timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CheckpointError(f"config field {name} must be a positive integer, got {value!r}")
        if self.attention_head_dim % 4:
            # 2D RoPE gives each axis head_dim/2 channels made of (cos, sin) pairs.
            raise CheckpointError(f"attention_head_dim must be a multiple of 4 for 2D RoPE, got {self.attention_head_dim}")
        if not self.attention_bias:
            raise CheckpointError("attention_bias: false is not a PixelFlow class-to-image model (its q/k/v/o have biases)")
        smallest = self.resolution // 2 ** (self.num_stages - 1)
        if smallest * 2 ** (self.num_stages - 1) != self.resolution or smallest % self.patch_size:
            raise CheckpointError(
                f"resolution {self.resolution} with {self.num_stages} stages and patch {self.patch_size} "
                "does not give every stage a whole number of patches")
        return self

    def to_official_yaml_dict(self, training: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The released config.yaml's layout: all five sections with every key of the authors' file.

        `training` fills the training-only keys (lr, weight_decay, epochs, root, center_crop,
        expand_ratio, num_workers, batch_size, seed) where they are known; the rest are null, which
        inference never reads.
        """
        known = dict(training or {})
        unknown = sorted(set(known) - set(TRAINING_KEYS))
        if unknown:
            raise ValueError(f"not a training key of config.yaml: {', '.join(unknown)}")
        value = {key: known.get(key) for key in TRAINING_KEYS}
        return {
            "model": {
                "target": "pixelflow.model.PixelFlowModel",
                "params": {
                    "num_attention_heads": self.num_attention_heads,
                    "attention_head_dim": self.attention_head_dim,
                    "in_channels": self.in_channels,
                    "out_channels": self.out_channels,
                    "depth": self.depth,
                    "num_classes": self.num_classes,
                    "patch_size": self.patch_size,
                    "attention_bias": self.attention_bias,
                },
            },
            "scheduler": {"num_train_timesteps": self.num_train_timesteps, "num_stages": self.num_stages,
                          "pyramid_shift": False},
            "train": {"lr": value["lr"], "weight_decay": value["weight_decay"], "epochs": value["epochs"]},
            "data": {"root": value["root"], "center_crop": value["center_crop"], "resolution": self.resolution,
                     "expand_ratio": value["expand_ratio"], "num_workers": value["num_workers"],
                     "batch_size": value["batch_size"]},
            "seed": value["seed"],
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


XL = ModelConfig()
"""The released 677M class-to-image model (PIXELFLOW.md section 2)."""

_MODEL_PARAMS = ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels",
                 "depth", "num_classes", "patch_size", "attention_bias")
_SCHEDULER_KEYS = ("num_train_timesteps", "num_stages")
# Scheduler keys of the released file that size nothing, with the only values our sampler implements.
# The authors' code never reads pyramid_shift; the released file has false. Any other value would
# promise a schedule we do not run, so it is refused rather than ignored.
_SCHEDULER_SWITCHES: dict[str, tuple[Any, ...]] = {"pyramid_shift": (False,)}
# Sections that only matter for training; an official config carries them and inference ignores them.
_TRAINING_ONLY = ("train", "seed", "optimizer", "logging", "ema")
TRAINING_KEYS = ("lr", "weight_decay", "epochs", "root", "center_crop", "expand_ratio", "num_workers",
                 "batch_size", "seed")
"""The released config.yaml's keys that only training reads (train.*, data.* but resolution, seed)."""


def config_from_official(raw: Any) -> ModelConfig:
    """Parse the mapping read from an official config.yaml.

    Unknown fields in `model.params` and `scheduler` are errors: they would change the network or
    the numbers, and silently ignoring one would serve a different model than the user trained.
    """
    if not isinstance(raw, Mapping):
        raise CheckpointError("config.yaml is not a mapping of sections (model, scheduler, data)")
    unknown_sections = sorted(set(raw) - {"model", "scheduler", "data", *_TRAINING_ONLY})
    if unknown_sections:
        raise CheckpointError(f"config.yaml has unknown top-level fields: {', '.join(map(str, unknown_sections))}")
    model = _section(raw, "model")
    unknown_model = sorted(set(model) - {"target", "params"})
    if unknown_model:
        raise CheckpointError(f"config.yaml has unknown fields in model: {', '.join(map(str, unknown_model))}")
    params = _section(model, "params", "model.params")
    scheduler = _section(raw, "scheduler")
    data = _section(raw, "data")
    _no_unknown(params, _MODEL_PARAMS, "model.params")
    _no_unknown(scheduler, _SCHEDULER_KEYS + tuple(_SCHEDULER_SWITCHES), "scheduler")
    for key, supported in _SCHEDULER_SWITCHES.items():
        if key in scheduler and not any(_same_value(scheduler[key], value) for value in supported):
            raise CheckpointError(
                f"config.yaml has scheduler.{key}: {_yaml_scalar(scheduler[key])}, which this sampler does not "
                f"implement (supported: {', '.join(_yaml_scalar(v) for v in supported)}, as in the released model)")
    missing = [f"model.params.{k}" for k in _MODEL_PARAMS if k not in params]
    missing += [f"scheduler.{k}" for k in _SCHEDULER_KEYS if k not in scheduler]
    if "resolution" not in data:
        missing.append("data.resolution")
    if missing:
        raise CheckpointError(f"config.yaml is missing {', '.join(missing)}")
    if params["in_channels"] != params["out_channels"]:
        raise CheckpointError("in_channels and out_channels differ: a PixelFlow velocity has the image's shape")
    return ModelConfig(
        **{k: params[k] for k in _MODEL_PARAMS},
        resolution=data["resolution"],
        num_stages=scheduler["num_stages"],
        num_train_timesteps=scheduler["num_train_timesteps"],
    ).validate()


def _same_value(a: Any, b: Any) -> bool:
    # YAML's `0` is not `false`: compare type as well, so only the released spelling is accepted.
    return type(a) is type(b) and a == b


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else repr(value)


def _section(raw: Mapping, key: str, label: str | None = None) -> Mapping:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise CheckpointError(f"config.yaml has no {label or key} section")
    return value


def _no_unknown(section: Mapping, known: tuple[str, ...], label: str) -> None:
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise CheckpointError(f"config.yaml has unknown fields in {label}: {', '.join(map(str, unknown))}")

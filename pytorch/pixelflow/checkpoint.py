"""Official-format checkpoint folders: `config.yaml` + `model.pt` (a plain state dict).

Reading checks everything before any weight is used, so that a wrong folder fails with one sentence
naming the problem; writing random-weight folders gives tests a stand-in for the real checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch import nn

from .config import CheckpointError, ModelConfig, config_from_official
from .network import PixelFlowNet

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.pt"


@dataclass
class Checkpoint:
    config: ModelConfig
    model: PixelFlowNet
    weights_sha256: str


def read_config(folder: Path) -> ModelConfig:
    path = Path(folder) / CONFIG_FILE
    if not Path(folder).is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}: not a PixelFlow checkpoint folder")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CheckpointError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    return config_from_official(raw)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_checkpoint(folder: Path) -> Checkpoint:
    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean the same to a user
        raise CheckpointError(f"{weights} is not a loadable PyTorch state dict ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = ", ".join(list(map(str, state))[:5]) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{weights} is not a plain state dict of tensors (found: {keys}); "
                              "save model.state_dict() (the EMA weights) on its own")
    model = PixelFlowNet(config, device="meta")
    check_state_dict(model, state)
    materialize(model, state)
    model.eval()
    return Checkpoint(config, model, sha256_of(weights))


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The checks of load_state_dict(strict=True), reported as one readable sentence."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) ({', '.join(unexpected[:3])}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    if mismatched:
        problems.append(f"shape mismatch: {'; '.join(mismatched[:3])}{'; ...' if len(mismatched) > 3 else ''}")
    if problems:
        raise CheckpointError("model.pt does not match config.yaml: " + "; ".join(problems))
    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"model.pt has non-floating-point weights: {', '.join(not_float[:3])}")


def materialize(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put the loaded tensors into a model built on the meta device, without a second copy.

    The XL model is 2.7 GB in float32: building it with random weights and then copying the
    checkpoint in would hold both. Names and shapes were checked by check_state_dict.
    """
    for name, tensor in state.items():
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        owner._parameters[attribute] = nn.Parameter(tensor.float(), requires_grad=False)
    model.load_state_dict(state, strict=True)  # the library's own check, now a cheap same-tensor copy


def write_random_checkpoint(folder: Path, config: ModelConfig, seed: int = 0) -> Path:
    """An official-format folder with random weights: a stand-in for the real checkpoint in tests."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = PixelFlowNet(config.validate())
    with torch.no_grad():
        # PyTorch's default init leaves RMSNorm weights at 1; randomise them so a test would see a
        # weight that is loaded into the wrong place.
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("norm3.weight"):
                parameter.uniform_(0.5, 1.5)
    save_checkpoint(folder, config, model.state_dict())
    return folder


def save_checkpoint(folder: Path, config: ModelConfig, state: dict[str, torch.Tensor],
                    training: Mapping[str, Any] | None = None) -> None:
    """Write `state` and `config` as an official-format folder (model.pt + config.yaml in the released
    layout; `training` fills its training-only keys, see ModelConfig.to_official_yaml_dict)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config.to_official_yaml_dict(training), sort_keys=False))

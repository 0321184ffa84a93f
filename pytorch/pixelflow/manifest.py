"""`pixelflow.json`: everything the TypeScript sampler needs to run a converted model.

Its schema lives in packages/schemas (zod); this module writes it. No timestamps: converting the
same checkpoint twice gives the same file.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import __version__
from .config import ModelConfig
from .export import INPUTS, OPSET, OUTPUTS
from .scheduler import BLOCK_NOISE_EPS, DEFAULT_GAMMA, cfg_stage_weights, stages

FORMAT = "pixelflow-onnx"
FORMAT_VERSION = 1
# The authors' demo defaults (PIXELFLOW.md section 6).
DEMO_DEFAULTS = {"solver": "euler", "cfg_scale": 4.0, "noise_shift": 1.0, "steps_per_stage": 10, "num_images": 4}
DOPRI5 = {"rtol": 1e-3, "atol": 1e-6}


def default_class_label(names: Sequence[str]) -> int:
    # The demo opens on "daisy" (ImageNet class 985); other models open on their first class.
    return 985 if len(names) > 985 and names[985] == "daisy" else 0


def build_manifest(config: ModelConfig, *, name: str, class_names: Sequence[str], weights_sha256: str,
                   dtype: str, parameters: int, model_file: str = "model.onnx",
                   external_data_file: str | None = None, cfg_scale: float | None = None,
                   steps: Sequence[int] | None = None, attention: str = "plain") -> dict:
    """cfg_scale and steps (one per stage) override the demo's sampling defaults for this model.
    `attention` is how the export wrote attention (network.ATTENTION_EXPORTS); "plain" is not
    recorded, so manifests of plain exports stay as they always were."""
    schedule = stages(config.num_stages, config.num_train_timesteps, DEFAULT_GAMMA)
    sizes = config.stage_resolutions()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "model_file": model_file,
        "external_data_file": external_data_file,
        "dtype": dtype,
        "resolution": config.resolution,
        "architecture": {
            "in_channels": config.in_channels,
            "out_channels": config.out_channels,
            "patch_size": config.patch_size,
            "num_attention_heads": config.num_attention_heads,
            "attention_head_dim": config.attention_head_dim,
            "hidden_size": config.hidden_size,
            "depth": config.depth,
            "num_classes": config.num_classes,
            "parameters": parameters,
        },
        "scheduler": {
            "num_train_timesteps": config.num_train_timesteps,
            "num_stages": config.num_stages,
            "gamma": DEFAULT_GAMMA,
            "block_noise_eps": BLOCK_NOISE_EPS,
            "cfg_stage_weights": cfg_stage_weights(config.num_stages),
        },
        "stages": [
            {
                "index": s.index,
                "resolution": sizes[s.index],
                "start_t": s.start_t,
                "end_t": s.end_t,
                "timestep_first": s.timestep_first,
                "timestep_last": s.timestep_last,
                "renoise": None if s.renoise_alpha is None else {"alpha": s.renoise_alpha, "beta": s.renoise_beta},
            }
            for s in schedule
        ],
        "classes": {"names": list(class_names), "null_label": config.null_label},
        "defaults": {
            "solver": DEMO_DEFAULTS["solver"],
            "cfg_scale": DEMO_DEFAULTS["cfg_scale"] if cfg_scale is None else float(cfg_scale),
            "noise_shift": DEMO_DEFAULTS["noise_shift"],
            "steps": [DEMO_DEFAULTS["steps_per_stage"]] * config.num_stages if steps is None else list(steps),
            "num_images": DEMO_DEFAULTS["num_images"],
            "class_label": default_class_label(class_names),
        },
        "dopri5": dict(DOPRI5),
        "onnx": {
            "opset": OPSET,
            "inputs": {name: name for name in INPUTS},
            "outputs": {name: name for name in OUTPUTS},
            **({} if attention == "plain" else {"attention": attention}),
        },
        "source": {
            "weights_sha256": weights_sha256,
            "converter": f"pixelflow-serve {__version__}",
            "torch_version": torch.__version__,
        },
    }

"""The cascade's stage windows, timestep ranges and re-noise coefficients (PIXELFLOW.md section 3).

Computed in float64 from (num_stages, num_train_timesteps, gamma); the TypeScript scheduler
computes the same numbers the same way and both are checked against the table in the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_GAMMA = -1.0 / 3.0
BLOCK_NOISE_EPS = 1e-6
# The reference's within-stage grid stops at 0.999 before its final jump to 1.0.
STAGE_GRID_END = 0.999


@dataclass(frozen=True)
class Stage:
    index: int
    start_t: float
    end_t: float
    timestep_first: float
    timestep_last: float
    renoise_alpha: float | None
    renoise_beta: float | None


def _rescale(s: float, gamma: float) -> float:
    return 1.0 / (math.sqrt(1.0 - 1.0 / gamma) * (1.0 - s) + s)


def stages(num_stages: int = 4, num_train_timesteps: int = 1000, gamma: float = DEFAULT_GAMMA) -> list[Stage]:
    starts, ends = [], []
    for k in range(num_stages):
        s = k / num_stages
        starts.append(0.0 if k == 0 else s * _rescale(s, gamma))
        ends.append((k + 1) / num_stages)
    spans = [e - s for s, e in zip(starts, ends)]
    total = sum(spans)
    # Integer timesteps are handed out in proportion to each stage's share of the time line.
    firsts = [0.0] + [float(math.floor(num_train_timesteps * sum(spans[: k + 1]) / total))
                      for k in range(num_stages - 1)]
    result = []
    for k in range(num_stages):
        if k < num_stages - 1:
            last = firsts[k] + STAGE_GRID_END * (firsts[k + 1] - firsts[k])
        else:
            last = float(num_train_timesteps - 1)
        alpha = beta = None
        if k > 0:
            s = k / num_stages
            alpha = _rescale(s, gamma)
            beta = alpha * (1.0 - s) / math.sqrt(-gamma)
        result.append(Stage(k, starts[k], ends[k], firsts[k], last, alpha, beta))
    return result


def cfg_stage_weights(num_stages: int) -> list[float]:
    """How much of (cfg - 1) each stage applies.

    The released model has 4 stages and uses (0, 1/6, 2/3, 1). For other stage counts the reference
    is silent; we ramp linearly from 0 to 1, which keeps its shape: no guidance at the coarsest stage,
    full guidance at the last.
    """
    if num_stages == 4:
        return [0.0, 1.0 / 6.0, 2.0 / 3.0, 1.0]
    if num_stages == 1:
        return [1.0]
    return [k / (num_stages - 1) for k in range(num_stages)]


def euler_grid(steps: int, shift: float) -> list[float]:
    """The stage-local times u_0..u_n of the reference Euler sampler, shift applied, ending at 1."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if steps == 1:
        grid = [0.0]
    else:
        grid = [STAGE_GRID_END * i / (steps - 1) for i in range(steps)]
    grid = [u / (shift + (1.0 - shift) * u) for u in grid]
    return grid + [1.0]


def model_timestep(stage: Stage, u: float) -> float:
    """T for stage-local time u, where u = 0.999 maps to the stage's last timestep."""
    return stage.timestep_first + (u / STAGE_GRID_END) * (stage.timestep_last - stage.timestep_first)

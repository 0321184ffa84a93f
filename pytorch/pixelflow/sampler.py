"""The reference cascaded sampler (PIXELFLOW.md sections 3-5), with its noise taken from outside.

Every random tensor a run uses (the stage-0 noise and the block noise of every later stage) is an
argument, so that another implementation fed the same noise must produce the same numbers. `draw_noise`
is a convenience that draws them with torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .scheduler import (BLOCK_NOISE_EPS, DEFAULT_GAMMA, Stage, cfg_stage_weights, euler_grid, model_timestep,
                        stages)

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(x (B,C,H,W), timestep (B,) float, class_labels (B,) int64) -> velocity (B,C,H,W)."""


class SamplingError(RuntimeError):
    """The solver could not finish (step-size underflow or too many steps)."""


@dataclass(frozen=True)
class SamplerParams:
    steps: Sequence[int]
    cfg_scale: float = 4.0
    noise_shift: float = 1.0
    solver: str = "euler"  # or "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-6
    max_solver_steps: int = 1000


@dataclass
class Noise:
    stage0: torch.Tensor  # (B, C, h0, w0) standard normal
    blocks: list[torch.Tensor]  # blocks[k-1]: (B, C, h_k, w_k) block noise for stage k >= 1


@dataclass
class SampleResult:
    stage_ends: list[torch.Tensor] = field(default_factory=list)  # unclamped state after every stage
    images: torch.Tensor | None = None  # uint8 (B, H, W, C)
    model_calls: int = 0


def block_noise_from_normals(z: torch.Tensor, gamma: float = DEFAULT_GAMMA, eps: float = BLOCK_NOISE_EPS) -> torch.Tensor:
    """Correlated 2x2 block noise from independent standard normals z of the same shape (.., H, W).

    Within each 2x2 block (row-major) the covariance is (1-gamma) I + gamma 11^T + eps I. Its closed
    form splits z into the block mean and the deviation from it, which stays exact in float32 where a
    Cholesky factor of this nearly singular matrix does not.
    """
    *lead, height, width = z.shape
    blocks = z.reshape(*lead, height // 2, 2, width // 2, 2)
    mean = blocks.mean(dim=(-3, -1), keepdim=True)
    out = math.sqrt(1.0 - gamma + eps) * (blocks - mean) + math.sqrt(1.0 + 3.0 * gamma + eps) * mean
    return out.reshape(z.shape)


def draw_noise(config: ModelConfig, batch: int, generator: torch.Generator) -> Noise:
    sizes = config.stage_resolutions()
    channels = config.in_channels
    stage0 = torch.randn(batch, channels, sizes[0], sizes[0], generator=generator)
    blocks = [block_noise_from_normals(torch.randn(batch, channels, s, s, generator=generator)) for s in sizes[1:]]
    return Noise(stage0, blocks)


def guided(model: VelocityFn, null_label: int, scale: float) -> VelocityFn:
    """Classifier-free guidance as the reference does it: null and class halves in one batch of 2B."""

    def velocity(x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        nulls = torch.full_like(labels, null_label)
        both = model(torch.cat([x, x]), torch.cat([timestep, timestep]), torch.cat([nulls, labels]))
        v_null, v_cond = both.chunk(2)
        return v_null + scale * (v_cond - v_null)

    return velocity


def sample(model: VelocityFn, config: ModelConfig, labels: torch.Tensor, params: SamplerParams,
           noise: Noise) -> SampleResult:
    schedule = stages(config.num_stages, config.num_train_timesteps)
    weights = cfg_stage_weights(config.num_stages)
    if len(params.steps) != config.num_stages:
        raise ValueError(f"steps has {len(params.steps)} entries for {config.num_stages} stages")
    if len(noise.blocks) != config.num_stages - 1:
        raise ValueError("one block-noise tensor is needed for every stage after the first")
    calls = [0]

    def counted(x, t, y):
        calls[0] += 1
        return model(x, t, y)

    result = SampleResult()
    x = noise.stage0.float()
    for stage in schedule:
        if stage.index > 0:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = stage.renoise_alpha * x + stage.renoise_beta * noise.blocks[stage.index - 1].float()
        velocity = guided(counted, config.null_label, 1.0 + (params.cfg_scale - 1.0) * weights[stage.index])
        if params.solver == "euler":
            x = _euler_stage(velocity, x, labels, stage, params.steps[stage.index], params.noise_shift)
        elif params.solver == "dopri5":
            x = _dopri5_stage(velocity, x, labels, stage, params)
        else:
            raise ValueError(f"unknown solver {params.solver!r}")
        result.stage_ends.append(x.clone())
    result.images = to_uint8_images(x)
    result.model_calls = calls[0]
    return result


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in about [-1, 1] -> uint8 (B, H, W, C) via round(255 * clamp(x / 2 + 0.5, 0, 1))."""
    return torch.round(255.0 * (x / 2 + 0.5).clamp(0, 1)).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _timesteps(value: float, like: torch.Tensor) -> torch.Tensor:
    """One model timestep per image of `like`, on its device."""
    return torch.full((like.shape[0],), value, dtype=torch.float32, device=like.device)


def _euler_stage(velocity: VelocityFn, x: torch.Tensor, labels: torch.Tensor, stage: Stage, steps: int,
                 shift: float) -> torch.Tensor:
    grid = euler_grid(steps, shift)
    for i in range(steps):
        v = velocity(x, _timesteps(model_timestep(stage, grid[i]), x), labels)
        x = x + (grid[i + 1] - grid[i]) * v
    return x


def _dopri5_stage(velocity: VelocityFn, x: torch.Tensor, labels: torch.Tensor, stage: Stage,
                  params: SamplerParams) -> torch.Tensor:
    span = stage.timestep_last - stage.timestep_first

    def f(u: float, state: torch.Tensor) -> torch.Tensor:
        # Under Dopri5 the reference maps u in [0, 1] linearly onto [T_first, T_last] (no shift).
        return velocity(state, _timesteps(stage.timestep_first + u * span, state), labels)

    return dopri5(f, x, 0.0, 1.0, rtol=params.rtol, atol=params.atol, max_steps=params.max_solver_steps)


# Dormand-Prince 5(4) tableau.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))
_SAFETY, _IFACTOR, _DFACTOR = 0.9, 10.0, 0.2


def _rms(t: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(t.double() * t.double())))


def dopri5(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float,
           rtol: float = 1e-3, atol: float = 1e-6, max_steps: int = 1000) -> torch.Tensor:
    """Adaptive Dormand-Prince 5(4) from t0 to t1, landing exactly on t1.

    Step control follows torchdiffeq's defaults (which the authors' demo calls): Hairer's initial
    step, RMS error norm over the whole state, safety 0.9, growth at most 10x, shrink at most 5x,
    and no shrink after an accepted step. Unlike torchdiffeq, the last step is cut to end on t1
    instead of overshooting and interpolating back; the difference is within the tolerance.
    """
    t, y = t0, y0
    k1 = f(t, y)
    h = _initial_step(f, t, y, k1, rtol, atol)
    for _ in range(max_steps):
        if t >= t1:
            return y
        h = min(h, t1 - t)
        if t + h == t:
            raise SamplingError(f"Dopri5 step size underflowed to {h:.3g} at t = {t:.6f}")
        k = [k1]
        for i in range(1, 7):
            y_stage = y + h * sum(a * ki for a, ki in zip(_A[i], k) if a != 0.0)
            k.append(f(t + _C[i] * h, y_stage))
        y_new = y_stage  # the 7th stage is evaluated at the 5th-order solution (FSAL)
        error = h * sum(e * ki for e, ki in zip(_E, k) if e != 0.0)
        tolerance = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        ratio = _rms(error / tolerance)
        if ratio <= 1.0:
            t, y, k1 = (t1 if h == t1 - t else t + h), y_new, k[6]
        h = h * _step_factor(ratio)
    if t >= t1:
        return y
    raise SamplingError(f"Dopri5 did not reach the end of the stage in {max_steps} steps (t = {t:.6f})")


def _step_factor(ratio: float) -> float:
    if not math.isfinite(ratio):  # the trial step overflowed: shrink as much as allowed
        return _DFACTOR
    if ratio == 0.0:
        return _IFACTOR
    floor = 1.0 if ratio < 1.0 else _DFACTOR
    return min(_IFACTOR, max(_SAFETY / ratio ** (1 / 5), floor))


def _initial_step(f, t0: float, y0: torch.Tensor, f0: torch.Tensor, rtol: float, atol: float) -> float:
    scale = atol + rtol * y0.abs()
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = f(t0 + h0, y0 + h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)

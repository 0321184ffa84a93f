"""The reference sampler's pieces on models whose answers are known in closed form."""

import math

import pytest
import torch

from pixelflow.config import ModelConfig
from pixelflow.sampler import (Noise, SamplerParams, SamplingError, block_noise_from_normals, dopri5, draw_noise,
                               guided, sample, to_uint8_images)
from pixelflow.scheduler import euler_grid, model_timestep, stages


def test_block_noise_has_the_spec_covariance_and_blocks_sum_to_zero():
    torch.manual_seed(0)
    n_blocks = 200_000
    b = block_noise_from_normals(torch.randn(1, 1, 2, 2 * n_blocks))
    blocks = b.reshape(2, n_blocks, 2).permute(1, 0, 2).reshape(n_blocks, 4)  # (tl, tr, bl, br) per block
    cov = blocks.T.double() @ blocks.double() / n_blocks
    expected = torch.full((4, 4), -1 / 3, dtype=torch.float64) + torch.eye(4, dtype=torch.float64) * (4 / 3 + 1e-6)
    # standard error of a covariance entry of unit-variance normals is about 1/sqrt(n) = 0.0022
    assert torch.allclose(cov, expected, atol=0.012)
    assert blocks.sum(dim=1).abs().max() < 1e-2  # sum = 4 * 1e-3 * mean(z): tiny, not exactly zero


def test_block_noise_general_gamma():
    torch.manual_seed(1)
    z = torch.randn(1, 1, 2, 2 * 100_000)
    b = block_noise_from_normals(z, gamma=-0.2, eps=0.0).reshape(2, -1, 2).permute(1, 0, 2).reshape(-1, 4)
    cov = b.T.double() @ b.double() / b.shape[0]
    expected = torch.full((4, 4), -0.2, dtype=torch.float64) + torch.eye(4, dtype=torch.float64) * 1.2
    assert torch.allclose(cov, expected, atol=0.02)


def test_guidance_is_one_batch_with_null_first():
    seen = []

    def model(x, t, y):
        seen.append(y.tolist())
        return torch.where(y[:, None, None, None] == 9, torch.ones_like(x), 3 * torch.ones_like(x))

    v = guided(model, null_label=9, scale=2.5)(torch.zeros(2, 1, 2, 2), torch.zeros(2), torch.tensor([4, 5]))
    assert seen == [[9, 9, 4, 5]]
    assert torch.allclose(v, torch.full_like(v, 1 + 2.5 * (3 - 1)))


def _tiny_config():
    return ModelConfig(in_channels=1, out_channels=1, patch_size=1, num_attention_heads=1, attention_head_dim=4,
                       depth=1, num_classes=2, resolution=8, num_stages=4)


def test_euler_with_a_constant_velocity_moves_by_it_and_renoises_between_stages():
    config = _tiny_config()
    calls = []

    def model(x, t, y):
        calls.append(t[0].item())
        return torch.ones_like(x)

    noise = Noise(torch.zeros(1, 1, 1, 1), [torch.zeros(1, 1, s, s) for s in (2, 4, 8)])
    result = sample(model, config, torch.tensor([0]), SamplerParams(steps=(2, 3, 1, 4), cfg_scale=1.0), noise)
    assert result.model_calls == 10
    # each stage integrates u from 0 to 1 with velocity 1: +1, then alpha * x (zero block noise)
    expected = 1.0
    for stage in stages(4)[1:]:
        expected = stage.renoise_alpha * expected + 1.0
    assert result.stage_ends[-1].shape == (1, 1, 8, 8)
    assert torch.allclose(result.stage_ends[-1], torch.full((1, 1, 8, 8), expected))
    # model timesteps of stage 1 (3 steps, no shift): T at u = 0, 0.4995, 0.999
    stage1 = stages(4)[1]
    assert calls[2:5] == pytest.approx([model_timestep(stage1, u) for u in euler_grid(3, 1.0)[:3]], abs=1e-4)


def test_dopri5_solves_a_linear_ode_within_tolerance():
    y = dopri5(lambda t, y: -y * (1 + t), torch.ones(3, dtype=torch.float64), 0.0, 1.0, rtol=1e-6, atol=1e-9)
    assert torch.allclose(y, torch.full((3,), math.exp(-1.5), dtype=torch.float64), rtol=1e-5)
    coarse = dopri5(lambda t, y: -y * (1 + t), torch.ones(3, dtype=torch.float64), 0.0, 1.0)
    assert torch.allclose(coarse, torch.full((3,), math.exp(-1.5), dtype=torch.float64), rtol=1e-2)


def test_dopri5_reports_too_many_steps():
    with pytest.raises(SamplingError, match="did not reach"):
        dopri5(lambda t, y: math.cos(200 * t) * 500 * torch.ones_like(y), torch.zeros(2), 0.0, 1.0, max_steps=3)


def test_dopri5_reports_step_size_underflow():
    # y' = y^2 from y = 2 blows up at t = 0.5: the step size must shrink without end
    with pytest.raises(SamplingError, match="underflowed"):
        dopri5(lambda t, y: y * y, torch.full((1,), 2.0, dtype=torch.float64), 0.0, 1.0, max_steps=100_000)


def test_images_round_the_clamped_state():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 3).expand(1, 3, 2, 3)
    img = to_uint8_images(x)
    assert img.shape == (1, 2, 3, 3) and img.dtype == torch.uint8
    assert img[0, :, :, 0].flatten().tolist() == [0, 0, 128, 191, 255, 255]


def test_draw_noise_shapes():
    config = _tiny_config()
    noise = draw_noise(config, 2, torch.Generator().manual_seed(0))
    assert noise.stage0.shape == (2, 1, 1, 1)
    assert [b.shape[-1] for b in noise.blocks] == [2, 4, 8]

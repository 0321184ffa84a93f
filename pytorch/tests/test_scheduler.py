"""Scheduler constants against the table in PIXELFLOW.md section 3."""

import pytest

from pixelflow.scheduler import cfg_stage_weights, euler_grid, model_timestep, stages

# stage: (start_t, end_t, T first, T last, alpha, beta), as printed in the spec
SPEC_TABLE = [
    (0.0, 0.25, 0.0, 174.825, None, None),
    (0.142857, 0.5, 175.0, 425.749, 0.571429, 0.742307),
    (0.333333, 0.75, 426.0, 718.707, 0.666667, 0.577350),
    (0.6, 1.0, 719.0, 999.0, 0.8, 0.346410),
]
PRINTED = 5e-7  # the spec prints six decimals


@pytest.mark.parametrize("k", range(4))
def test_four_stage_constants_match_the_spec(k):
    stage = stages(4, 1000)[k]
    start, end, first, last, alpha, beta = SPEC_TABLE[k]
    assert stage.index == k
    assert stage.start_t == pytest.approx(start, abs=PRINTED)
    assert stage.end_t == pytest.approx(end, abs=PRINTED)
    assert stage.timestep_first == first
    assert stage.timestep_last == pytest.approx(last, abs=PRINTED)
    if alpha is None:
        assert stage.renoise_alpha is None and stage.renoise_beta is None
    else:
        assert stage.renoise_alpha == pytest.approx(alpha, abs=PRINTED)
        assert stage.renoise_beta == pytest.approx(beta, abs=PRINTED)


@pytest.mark.parametrize("num_stages,train_steps", [(1, 1000), (2, 1000), (3, 500), (5, 1000), (6, 2000)])
def test_other_stage_counts_cover_the_timeline_in_order(num_stages, train_steps):
    schedule = stages(num_stages, train_steps)
    assert len(schedule) == num_stages
    assert schedule[0].timestep_first == 0.0
    assert schedule[-1].timestep_last == train_steps - 1
    assert schedule[-1].end_t == 1.0
    for previous, current in zip(schedule, schedule[1:]):
        assert previous.timestep_last < current.timestep_first
        assert current.timestep_first == int(current.timestep_first)
        assert 0 < current.renoise_alpha <= 1 and current.renoise_beta > 0
        assert previous.end_t > current.start_t  # windows overlap: each stage re-noises back in time


def test_cfg_ramp_is_the_reference_table_for_four_stages():
    assert cfg_stage_weights(4) == [0.0, 1 / 6, 2 / 3, 1.0]
    assert cfg_stage_weights(1) == [1.0]
    assert cfg_stage_weights(3) == [0.0, 0.5, 1.0]


def test_euler_grid_applies_the_shift_and_ends_with_the_jump_to_one():
    assert euler_grid(1, 1.0) == [0.0, 1.0]
    grid = euler_grid(4, 1.0)
    assert grid == pytest.approx([0.0, 0.333, 0.666, 0.999, 1.0])
    shifted = euler_grid(3, 3.0)
    u = 0.4995
    assert shifted[1] == pytest.approx(u / (3 + (1 - 3) * u))
    assert shifted[-2] == pytest.approx(0.999 / (3 - 2 * 0.999)) and shifted[-1] == 1.0


def test_model_timestep_maps_0999_to_the_last_timestep():
    stage = stages(4, 1000)[1]
    assert model_timestep(stage, 0.0) == 175.0
    assert model_timestep(stage, 0.999) == pytest.approx(stage.timestep_last)

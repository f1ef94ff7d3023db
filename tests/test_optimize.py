"""Learning-rate schedule: warm-up ramp and smooth decays, per batch and absolute in epochs."""

import argparse

import pytest
import torch

from openfields import optimize


def parse(*argv):
    parser = argparse.ArgumentParser()
    optimize.cli(parser)
    return parser.parse_args(argv)


def test_warm_up_ramps_geometrically_from_the_factor_to_one():
    schedule = optimize.LearningRateSchedule(warm_up_epochs=2.0, warm_up_factor=0.01)
    assert schedule(0.0) == pytest.approx(0.01)
    assert schedule(1.0) == pytest.approx(0.1)  # halfway on a log scale
    assert schedule(2.0) == pytest.approx(1.0)
    assert schedule(50.0) == pytest.approx(1.0)


def test_decays_are_smooth_over_their_duration_and_multiply():
    schedule = optimize.LearningRateSchedule(decay_epochs=(10, 20), decay_factor=0.1, decay_duration=2.0,
                                             warm_up_epochs=0.0)
    assert schedule(9.9) == pytest.approx(1.0)
    assert schedule(11.0) == pytest.approx(0.1 ** 0.5)
    assert schedule(12.0) == pytest.approx(0.1)
    assert schedule(25.0) == pytest.approx(0.01)


def test_scheduler_steps_per_batch_and_can_start_mid_schedule():
    args = parse('--lr', '0.1', '--lr-warm-up-epochs', '1', '--lr-warm-up-factor', '0.01')
    schedule = optimize.LearningRateSchedule.from_args(args)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = optimize.optimizer_from_args(args, [parameter])
    scheduler = optimize.scheduler(optimizer, schedule, batches_per_epoch=4)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[2] == pytest.approx(0.01)  # half an epoch into a one-epoch warm-up
    assert lrs[4] == pytest.approx(0.1)
    resumed = optimize.scheduler(optimize.optimizer_from_args(args, [parameter]), schedule,
                                 batches_per_epoch=4, start_epoch=1)
    assert resumed.get_last_lr()[0] == pytest.approx(0.1)


def test_sgd_is_nesterov_by_default_and_flags_turn_it_off():
    parameter = torch.nn.Parameter(torch.zeros(1))
    assert optimize.optimizer_from_args(parse(), [parameter]).defaults['nesterov'] is True
    assert optimize.optimizer_from_args(parse('--no-nesterov'), [parameter]).defaults['nesterov'] is False


@pytest.mark.parametrize('argv, flag', [
    (['--lr', '0'], '--lr'),
    (['--lr-warm-up-factor', '2'], '--lr-warm-up-factor'),
    (['--momentum', '0'], '--nesterov'),
])
def test_invalid_values_name_their_flag(argv, flag):
    args = parse(*argv)
    with pytest.raises(ValueError, match=flag):
        optimize.LearningRateSchedule.from_args(args)
        optimize.optimizer_from_args(args, [torch.nn.Parameter(torch.zeros(1))])


@pytest.mark.parametrize('name, cls', [('adam', torch.optim.Adam), ('adamw', torch.optim.AdamW)])
def test_adam_variants_take_momentum_as_beta1(name, cls):
    args = parse('--optimizer', name, '--momentum', '0.95', '--beta2', '0.99', '--weight-decay', '0.01')
    optimizer = optimize.optimizer_from_args(args, [torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer) is cls
    assert optimizer.defaults['betas'] == (0.95, 0.99) and optimizer.defaults['weight_decay'] == 0.01

"""Learning-rate schedule: warm-up ramp and smooth decays, per batch and absolute in epochs."""

import argparse

import pytest
import torch

from openfields.training import optimize


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
    optimizer = optimize.OptimizerSettings.from_args(args).build([parameter])
    scheduler = optimize.scheduler(optimizer, schedule, batches_per_epoch=4)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[2] == pytest.approx(0.01)  # half an epoch into a one-epoch warm-up
    assert lrs[4] == pytest.approx(0.1)
    resumed = optimize.scheduler(optimize.OptimizerSettings.from_args(args).build([parameter]), schedule,
                                 batches_per_epoch=4, start_epoch=1)
    assert resumed.get_last_lr()[0] == pytest.approx(0.1)


def test_sgd_is_nesterov_by_default_and_flags_turn_it_off():
    parameter = torch.nn.Parameter(torch.zeros(1))
    assert optimize.OptimizerSettings.from_args(parse()).build([parameter]).defaults['nesterov'] is True
    no_nesterov = optimize.OptimizerSettings.from_args(parse('--no-nesterov'))
    assert no_nesterov.build([parameter]).defaults['nesterov'] is False


@pytest.mark.parametrize('argv, flag', [
    (['--lr', '0'], '--lr'),
    (['--lr-warm-up-factor', '2'], '--lr-warm-up-factor'),
    (['--momentum', '0'], '--nesterov'),
])
def test_invalid_values_name_their_flag(argv, flag):
    args = parse(*argv)
    with pytest.raises(ValueError, match=flag):
        optimize.LearningRateSchedule.from_args(args)
        optimize.OptimizerSettings.from_args(args).build([torch.nn.Parameter(torch.zeros(1))])


@pytest.mark.parametrize('name, cls', [('adam', torch.optim.Adam), ('adamw', torch.optim.AdamW)])
def test_adam_variants_take_momentum_as_beta1(name, cls):
    args = parse('--optimizer', name, '--momentum', '0.95', '--beta2', '0.99', '--weight-decay', '0.01')
    optimizer = optimize.OptimizerSettings.from_args(args).build([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer) is cls
    assert optimizer.defaults['betas'] == (0.95, 0.99) and optimizer.defaults['weight_decay'] == 0.01


def lrs_per_epoch(args, epochs, batches_per_epoch=3):
    """``{epoch (from 1): [lr of each batch]}`` from the per-batch scheduler of ``args``."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = optimize.OptimizerSettings.from_args(args).build([parameter])
    scheduler = optimize.scheduler(optimizer, optimize.LearningRateSchedule.from_args(args), batches_per_epoch)
    lrs = {}
    for epoch in range(1, epochs + 1):
        for _ in range(batches_per_epoch):
            lrs.setdefault(epoch, []).append(optimizer.param_groups[0]['lr'])
            optimizer.step()
            scheduler.step()
    return lrs


def test_milestone_schedule_sets_the_listed_learning_rates_after_the_listed_epochs():
    args = parse('--lr', '0.1', '--lr-schedule', 'milestones', '--lr-milestones', '2', '4',
                 '--lr-values', '0.01', '0.001', '--lr-warm-up-epochs', '0')
    expected = {1: 0.1, 2: 0.1, 3: 0.01, 4: 0.01, 5: 0.001, 6: 0.001}
    for epoch, lrs in lrs_per_epoch(args, 6).items():
        assert lrs == pytest.approx([expected[epoch]] * 3), epoch


def test_milestone_schedule_follows_deeplabcuts_default_epochs():
    args = parse('--lr', '1e-4', '--lr-schedule', 'milestones', '--lr-milestones', '160', '190',
                 '--lr-values', '1e-5', '1e-6', '--lr-warm-up-epochs', '0')
    schedule = optimize.LearningRateSchedule.from_args(args)

    def lr_of_epoch(epoch):  # epoch n (from 1) starts at e = n - 1 and ends just before e = n
        return [1e-4 * schedule(epoch - 1), 1e-4 * schedule(epoch - 1e-6)]
    for epoch, lr in ((1, 1e-4), (160, 1e-4), (161, 1e-5), (190, 1e-5), (191, 1e-6), (200, 1e-6)):
        assert lr_of_epoch(epoch) == pytest.approx([lr, lr]), epoch


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs():
    args = parse('--lr', '0.1', '--lr-schedule', 'step', '--lr-step-size', '2', '--lr-gamma', '0.5',
                 '--lr-warm-up-epochs', '0')
    lrs = lrs_per_epoch(args, 5)
    assert [lrs[e][0] for e in range(1, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert lrs[3] == pytest.approx([0.05] * 3)  # constant within an epoch


def test_cosine_schedule_falls_from_lr_to_the_minimum_at_the_last_epoch_after_the_warm_up():
    args = parse('--lr', '0.1', '--lr-schedule', 'cosine', '--lr-cosine-min', '0.01',
                 '--lr-warm-up-epochs', '1', '--lr-warm-up-factor', '0.01')
    args.epochs = 10  # a trainer flag
    schedule = optimize.LearningRateSchedule.from_args(args)
    assert 0.1 * schedule(0.0) == pytest.approx(0.001)  # warm-up start: factor times the cosine (1 at 0)
    assert 0.1 * schedule(5.0) == pytest.approx(0.055)  # halfway: the mean of lr and the minimum
    assert 0.1 * schedule(10.0) == pytest.approx(0.01)
    assert 0.1 * schedule(12.0) == pytest.approx(0.01)  # stays at the minimum after --epochs
    lrs = lrs_per_epoch(args, 10, batches_per_epoch=4)
    assert lrs[6][0] > lrs[6][1] > lrs[6][2]  # per batch, not per epoch


@pytest.mark.parametrize('argv, message', [
    (['--lr-schedule', 'milestones', '--lr-milestones', '2', '4', '--lr-values', '0.1'],
     'one --lr-values entry per --lr-milestones epoch'),
    (['--lr-schedule', 'milestones', '--lr-milestones', '4', '2', '--lr-values', '0.1', '0.01'],
     '--lr-milestones must be increasing'),
    (['--lr-schedule', 'step'], '--lr-schedule step needs --lr-step-size'),
    (['--lr-schedule', 'cosine', '--lr-cosine-min', '1'], '--lr-cosine-min must be in'),
    (['--lr-decay', '10'] + ['--lr-schedule', 'cosine'], '--lr-decay belongs to --lr-schedule decay'),
    (['--lr-milestones', '10'], '--lr-milestones/--lr-values belongs to --lr-schedule milestones'),
])
def test_schedule_flags_that_do_not_fit_name_their_flag(argv, message):
    args = parse(*argv)
    args.epochs = 10
    with pytest.raises(ValueError, match=message):
        optimize.LearningRateSchedule.from_args(args)


def test_fast_forward_places_a_new_scheduler_mid_schedule_and_sets_its_rate():
    args = parse('--lr', '0.1', '--lr-warm-up-epochs', '0', '--lr-schedule', 'milestones', '--lr-milestones', '2',
                 '--lr-values', '0.01')
    optimizer = optimize.OptimizerSettings.from_args(args).build([torch.nn.Parameter(torch.zeros(1))])
    scheduler = optimize.scheduler(optimizer, optimize.LearningRateSchedule.from_args(args), batches_per_epoch=4)
    optimize.fast_forward(scheduler, 7)  # epoch 1.75: before the milestone
    assert optimizer.param_groups[0]['lr'] == scheduler.get_last_lr()[0] == pytest.approx(0.1)
    optimizer.step()
    scheduler.step()  # step 8: epoch 2
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.01) and scheduler.last_epoch == 8


def test_a_schedule_round_trips_through_plain_values_and_names_its_differences():
    schedule = optimize.LearningRateSchedule.from_args(parse('--lr-decay', '10', '20'))
    assert optimize.LearningRateSchedule.from_dict(schedule.to_dict()) == schedule
    other = optimize.LearningRateSchedule.from_args(parse('--lr-decay', '10', '30'))
    assert schedule.differences(other) == ['decay_epochs (10.0, 20.0) -> (10.0, 30.0)']

"""Schedulers by name as DeepLabCut configures them: torch's classes, LRListScheduler, nested ones, stepped
once per epoch; a bad one stops before training, naming its key."""

import argparse
import math

import pytest
import torch

from openfields.training import optimize, schedulers

# rtmpose-style: a linear warm-up, a cosine from its milestone on, then DeepLabCut's LRListScheduler
RTMPOSE_STYLE = {
    'schedulers': [{'type': 'LinearLR', 'params': {'start_factor': 0.1, 'total_iters': 2}},
                   {'type': 'CosineAnnealingLR', 'params': {'T_max': 4, 'eta_min': 5e-05}},
                   {'type': 'LRListScheduler', 'params': {'milestones': [2, 4], 'lr_list': [[1e-5], [1e-6]]}}],
    'milestones': [3, 7]}


def cosine(t, base=1e-3, eta_min=5e-05, t_max=4):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def test_an_rtmpose_style_sequence_gives_the_learning_rates_computed_by_hand():
    rates = schedulers.learning_rates('SequentialLR', RTMPOSE_STYLE, 1e-3, 11)
    # epoch n + 1 runs at rates[n]
    assert rates[0] == pytest.approx(1e-4)  # LinearLR: 0.1 x lr
    assert rates[1] == pytest.approx(5.5e-4)  # halfway of its 2 steps: 0.55 x lr
    assert rates[2] == pytest.approx(1e-3)
    assert rates[3] == pytest.approx(1e-3)  # milestone 3: the cosine starts at lr
    assert rates[4] == pytest.approx(8.608757e-4)  # 5e-05 + 9.5e-4 (1 + cos(pi / 4)) / 2
    assert rates[5] == pytest.approx(5.25e-4)  # the cosine's middle
    assert rates[6] == pytest.approx(1.891243e-4)
    assert rates[7:9] == pytest.approx([1.891243e-4] * 2)  # milestone 7: LRListScheduler keeps the rate...
    assert rates[9:11] == pytest.approx([1e-5] * 2)  # ... until its milestone 2, counted from its start
    assert rates[11] == pytest.approx(1e-6)
    assert [rates[4], rates[6]] == pytest.approx([cosine(1), cosine(3)])


def test_the_per_batch_schedule_holds_each_epochs_rate_of_the_torch_scheduler():
    parser = argparse.ArgumentParser()
    optimize.cli(parser)
    args = parser.parse_args(['--lr', '1e-3', '--lr-warm-up-epochs', '0', '--scheduler-class', 'SequentialLR',
                              '--scheduler-params', optimize.json.dumps(RTMPOSE_STYLE)])
    args.epochs = 12
    schedule = optimize.LearningRateSchedule.from_args(args)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = optimize.scheduler(optimizer, schedule, batches_per_epoch=3)
    per_epoch = []
    for _ in range(12):
        lrs = []
        for _ in range(3):
            lrs.append(optimizer.param_groups[0]['lr'])
            optimizer.step()
            scheduler.step()
        assert lrs == pytest.approx([lrs[0]] * 3)  # stepped once per epoch, as DeepLabCut steps it
        per_epoch.append(lrs[0])
    assert per_epoch == pytest.approx(schedulers.learning_rates('SequentialLR', RTMPOSE_STYLE, 1e-3, 11))
    resumed = optimize.scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3),
                                 optimize.LearningRateSchedule.from_dict(schedule.to_dict()), 3, start_epoch=5)
    assert resumed.get_last_lr()[0] == pytest.approx(per_epoch[5])  # a resumed run needs no history


def test_lr_list_scheduler_sets_absolute_rates_at_its_milestones_only():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = schedulers.LRListScheduler(optimizer, milestones=[2, 3], lr_list=[[0.01], 0.001])
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    rates = []
    for _ in range(4):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]['lr'])
    assert rates == pytest.approx([0.1, 0.01, 0.001, 0.001])
    assert scheduler.state_dict()['rates'] == {2: [0.01], 3: [0.001]}


def test_a_chained_scheduler_multiplies_its_parts():
    params = {'schedulers': [{'type': 'StepLR', 'params': {'step_size': 2, 'gamma': 0.1}},
                             {'type': 'ExponentialLR', 'params': {'gamma': 0.5}}]}
    rates = schedulers.learning_rates('ChainedScheduler', params, 1.0, 3)
    assert rates == pytest.approx([1.0, 0.5, 0.025, 0.0125])  # 0.5^n, times 0.1 from step 2 on


def nested(**cosine_params):
    return {'schedulers': [{'type': 'ConstantLR', 'params': {'factor': 0.5, 'total_iters': 1}},
                           {'type': 'CosineAnnealingLR', 'params': cosine_params}], 'milestones': [2]}


@pytest.mark.parametrize('name, params, key, reason', [
    ('SequentialLR', nested(T_max=4, eta_min='5e-05'), 'params.schedulers[1].params.eta_min',
     "CosineAnnealingLR takes a number here, got the string '5e-05' (quoted"),
    ('SequentialLR', nested(T_max=4, eta_min=[1]), 'params.schedulers[1].params.eta_min',
     'CosineAnnealingLR takes a number here, got [1]'),
    ('SequentialLR', nested(T_max=0), 'params.schedulers[1]',
     'CosineAnnealingLR fails when stepped after epoch 2: float division by zero'),
    ('SequentialLR', nested(eta_min=0.0), 'params.schedulers[1].params', 'CosineAnnealingLR needs T_max'),
    ('SequentialLR', nested(T_max=4, bogus=1), 'params.schedulers[1].params.bogus',
     "CosineAnnealingLR rejects its params: no parameter 'bogus' (it takes T_max, eta_min, last_epoch)"),
    ('StepLR', {'step_size': True}, 'params.step_size', 'StepLR takes a number here, got True'),
    ('NoSuchLR', {}, '', "torch.optim.lr_scheduler has no scheduler class 'NoSuchLR'"),
    ('ReduceLROnPlateau', {}, '', 'ReduceLROnPlateau steps on a metric'),
    ('OneCycleLR', {'max_lr': 0.1, 'total_steps': 3}, '', 'OneCycleLR fails when stepped after epoch 4'),
    ('LRListScheduler', {'milestones': [3, 2], 'lr_list': [1e-4, 1e-5]}, 'params.milestones', 'must increase'),
    ('LRListScheduler', {'milestones': [3], 'lr_list': [[1e-4, 1e-5]]}, 'params.lr_list[0]',
     'one learning rate per parameter group (1)'),
    ('LRListScheduler', {'milestones': [3], 'lr_list': [['1e-4']]}, 'params.lr_list[0][0]',
     "LRListScheduler takes a number here, got the string '1e-4'"),
    ('SequentialLR', {'schedulers': [{'type': 'StepLR', 'param': {}}], 'milestones': []},
     'params.schedulers[0].param', 'a nested scheduler is {type, params}'),
])
def test_a_bad_scheduler_is_refused_naming_its_key(name, params, key, reason):
    with pytest.raises(schedulers.ParamsError) as refused:
        schedulers.learning_rates(name, params, 1e-3, 6)
    assert refused.value.key == key and reason in refused.value.reason


def test_the_flags_step_the_scheduler_through_every_epoch_of_the_run():
    parser = argparse.ArgumentParser()
    optimize.cli(parser)
    args = parser.parse_args(['--scheduler-class', 'SequentialLR', '--scheduler-params',
                              '{"schedulers": [{"type": "ConstantLR", "params": {}}, {"type": "OneCycleLR", '
                              '"params": {"max_lr": 0.1, "total_steps": 3}}], "milestones": [5]}'])
    args.epochs = 8
    optimize.LearningRateSchedule.from_args(args)  # the OneCycleLR's 3 steps end with the run
    args.epochs = 9
    with pytest.raises(ValueError, match=r'^--scheduler-params schedulers\[1\]: OneCycleLR fails when stepped '
                                         r'after epoch 9: .* \(--epochs 9\)$'):
        optimize.LearningRateSchedule.from_args(args)


def test_optimizer_params_are_checked_against_the_class():
    with pytest.raises(schedulers.ParamsError) as refused:
        optimize.check_optimizer('AdamW', {'weight_decay': '1e-2'}, 1e-3)
    assert refused.value.key == 'params.weight_decay'
    assert refused.value.reason.startswith("AdamW takes a number here, got the string '1e-2'")
    optimize.check_optimizer('AdamW', {'betas': [0.9, 0.99], 'amsgrad': True}, 1e-3)
    with pytest.raises(schedulers.ParamsError, match='AdamW takes a list of numbers here'):
        optimize.check_optimizer('AdamW', {'betas': 0.9}, 1e-3)

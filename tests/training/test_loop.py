"""Trainer with several datasets: batches of one dataset train only its heads; logs per dataset."""

import pytest
import torch
from torch import nn

from openfields import headmeta
from openfields.training import loop as trainer
from openfields.datasets.weighted_counter import WeightedCounterLoader
from openfields.network.heads import CompositeField
from openfields.network.losses import CompositeLoss, LossSettings, MultiHeadLoss
from openfields.network.nets import Shell
from openfields.training.log import TrainingLog, read

SIZE = 17  # input pixels; fields of 5 x 5 cells at stride 4


class TinyBasenet(nn.Module):
    """One strided convolution: enough to test what the trainer does with heads."""

    name = 'tiny'
    config: dict = {}
    stride = 4
    out_features = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, self.out_features, kernel_size=5, stride=self.stride, padding=2)

    def forward(self, x):
        return torch.relu(self.conv(x))


def two_dataset_model():
    """Datasets ``a`` and ``b`` each with a head named ``cif``: distinct heads ``a.cif`` and ``b.cif``."""
    torch.manual_seed(0)
    basenet = TinyBasenet()
    metas = [headmeta.Cif(name='cif', dataset=dataset, keypoints=['x', 'y', 'z'], sigmas=[0.1] * 3)
             for dataset in ('a', 'b')]
    model = Shell(basenet, [CompositeField(meta, basenet.out_features) for meta in metas])
    loss = MultiHeadLoss([CompositeLoss(meta, LossSettings()) for meta in metas])
    return model, loss


def batch(dataset: str, head_index: int, seed: int, size: int = 2):
    """``(images, [cif target], metas)`` as a dataset's loader yields it: one positive cell per field."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, SIZE, SIZE, generator=generator)
    target = torch.full((size, 3, 5, 5, 5), float('nan'))
    target[:, :, 0] = 0.0
    target[:, :, :, 2, 2] = torch.tensor([1.0, 0.3, -0.2, 0.1, 2.0])
    metas = [{'dataset': dataset, 'head_indices': [head_index]} for _ in range(size)]
    return images, [target], metas


def make_trainer(model, loss, tmp_path, **settings):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return trainer.Trainer(model, loss, optimizer, scheduler, device=torch.device('cpu'),
                           settings=trainer.TrainerSettings(**{'epochs': 1, 'ema': 0.0, **settings}),
                           log=TrainingLog(tmp_path / 'log'),
                           n_heads=len(model.heads))


def test_heads_without_targets_get_no_gradient_and_no_update(tmp_path):
    model, loss = two_dataset_model()
    runner = make_trainer(model, loss, tmp_path)
    images, targets, metas = batch('b', 1, seed=1)
    runner.train_batch(images, runner._full_targets(targets, metas))  # b.cif gets momentum
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    images, targets, metas = batch('a', 0, seed=2)
    full = runner._full_targets(targets, metas)
    assert [t is not None for t in full] == [True, False]
    total, components = runner.train_batch(images, full)

    assert total > 0
    assert components['b.cif.c'] is None and components['a.cif.c'] > 0
    assert all(p.grad is None for p in model.heads[1].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads[0].parameters())
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    # neither momentum nor weight decay moved the idle head
    assert changed == {'basenet.conv.weight', 'basenet.conv.bias', 'heads.0.conv.weight', 'heads.0.conv.bias'}


def test_epoch_logs_batches_per_dataset_and_validation_per_dataset(tmp_path):
    model, loss = two_dataset_model()
    runner = make_trainer(model, loss, tmp_path, display_interval=1)
    train_loader = WeightedCounterLoader([[batch('a', 0, seed=i) for i in range(10)],
                                          [batch('b', 1, seed=10 + i) for i in range(2)]], [2 / 3, 1 / 3])
    val_loaders = {'a': [batch('a', 0, seed=20)], 'b': [batch('b', 1, seed=21), batch('b', 1, seed=22)]}
    runner.loop(train_loader, val_loaders)

    records = read(tmp_path / 'log')
    train_epoch = next(r for r in records if r['type'] == 'train-epoch')
    assert train_epoch['batches_per_dataset'] == {'a': 5, 'b': 2}  # a b a a b a a, then b ran out
    assert train_epoch['n_batches'] == 7
    served = [next(name.split('.')[0] for name, v in r['head_losses'].items() if v is not None)
              for r in records if r['type'] == 'train']
    assert served == ['a', 'b', 'a', 'a', 'b', 'a', 'a']
    val = [r for r in records if r['type'] == 'val-epoch']
    assert [(r['dataset'], r['n_batches']) for r in val] == [('a', 1), ('b', 2)]
    assert set(val[0]['head_losses']) == {'a.cif.c', 'a.cif.vec', 'a.cif.scales'}
    assert set(val[1]['head_losses']) == {'b.cif.c', 'b.cif.vec', 'b.cif.scales'}
    assert val[1]['loss'] == pytest.approx(sum(val[1]['head_losses'].values()), rel=1e-6)


def batchnorm_model():
    """A network whose only BatchNorm sits after the basenet's convolution."""
    torch.manual_seed(0)
    basenet = TinyBasenet()
    basenet.conv = nn.Sequential(basenet.conv, nn.BatchNorm2d(basenet.out_features, momentum=0.01))
    meta = headmeta.Cif(name='cif', dataset='a', keypoints=['x', 'y', 'z'], sigmas=[0.1] * 3)
    return Shell(basenet, [CompositeField(meta, basenet.out_features)]), MultiHeadLoss([CompositeLoss(meta, LossSettings())])


def test_batchnorm_recalibration_gives_the_statistics_of_the_first_batches(tmp_path):
    model, loss = batchnorm_model()
    runner = make_trainer(model, loss, tmp_path, bn_recalibration_batches=2)
    loader = [batch('a', 0, seed=i, size=4) for i in range(3)]
    norm = model.basenet.conv[1]
    norm.running_mean.fill_(5.0)  # statistics of other weights
    runner.recalibrate_batchnorm(loader)

    with torch.no_grad():
        features = torch.cat([model.basenet.conv[0](images) for images, _, _ in loader[:2]])
    assert torch.allclose(norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(norm.running_var, features.var(dim=(0, 2, 3)), rtol=0.05)
    assert norm.momentum == 0.01  # restored


def test_without_recalibration_the_running_statistics_stay(tmp_path):
    model, loss = batchnorm_model()
    runner = make_trainer(model, loss, tmp_path)
    norm = model.basenet.conv[1]
    norm.running_mean.fill_(5.0)
    runner.recalibrate_batchnorm([batch('a', 0, seed=0)])
    assert torch.all(norm.running_mean == 5.0)


class FixedTestSet:
    """Scores ``AP`` = the call count / 10 and records the network's mode while scoring."""

    def __init__(self):
        self.modes = []

    def score(self, network, device):
        self.modes.append(network.training)
        return {'AP': len(self.modes) / 10, 'AR': float('nan')}


@pytest.mark.parametrize('save_epochs, saves', [
    (None, {2: (True, None), 3: (False, 0.1), 4: (True, 0.2)}),  # snapshots with validation
    (3, {3: (True, 0.1), 4: (True, 0.2)})])
def test_each_end_of_epoch_step_follows_its_interval_and_scores_reach_the_checkpoint(tmp_path, save_epochs, saves):
    model, loss = two_dataset_model()
    calls = {}
    runner = make_trainer(model, loss, tmp_path, epochs=4, val_interval=2, eval_interval=3, save_epochs=save_epochs)

    class Recorder(trainer.NoCheckpoints):
        def save_epoch(self, position, state, *, snapshot, scores=None):
            calls[position.epoch] = (snapshot, scores['a']['AP'] if scores is not None else None)

        def save_interrupted(self, position, state):
            raise AssertionError('no stop signal was sent')

    runner.checkpointer = Recorder()
    runner.test_sets = {'a': FixedTestSet()}
    runner.loop([batch('a', 0, seed=i) for i in range(2)], {'a': [batch('a', 0, seed=9)]})

    assert calls == saves
    records = read(tmp_path / 'log')
    assert [r['epoch'] for r in records if r['type'] == 'val-epoch'] == [2, 4]
    tests = [r for r in records if r['type'] == 'test']
    assert [(r['epoch'], r['dataset'], r['metrics']['test.AP']) for r in tests] == [(3, 'a', 0.1), (4, 'a', 0.2)]
    assert tests[0]['metrics']['test.AR'] == 'nan'  # the log writes non-finite floats as strings
    assert runner.test_sets['a'].modes == [False, False]  # scored in eval mode ...
    assert model.training  # ... and back to training after


class ZeroLoss(nn.Module):
    """A loss that is exactly 0.0: what a perfectly fitted validation batch gives."""
    field_names = ['a.cif.c']

    def forward(self, outputs, targets):
        zero = torch.zeros(())
        return zero, {'a.cif.c': zero}


def test_a_validation_loss_of_exactly_zero_is_printed_as_zero_not_nan(tmp_path, caplog):
    model, _ = two_dataset_model()
    runner = make_trainer(model, ZeroLoss(), tmp_path)
    caplog.set_level('INFO')
    runner.val_epoch([batch('a', 0, seed=1)], 1, 'a')
    assert 'val loss 0.0000 on a' in caplog.text and 'nan' not in caplog.text
    assert read(tmp_path / 'log')[-1]['loss'] == 0.0

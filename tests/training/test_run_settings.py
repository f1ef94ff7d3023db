"""What a run trains (its recipe) and how it is run (its settings) are frozen objects built once from the flags;
the detector run of top-down mode is the pose run's settings with the detector's own, acceleration included,
and ``--checkpoint`` is read once per run."""

import dataclasses
import pathlib
import shutil

import pytest
import torch

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint, factory as network_factory
from openfields.topdown import detector_training
from openfields.training.accelerate import AccelerateSettings
from openfields.training.recipe import Recipe
from openfields.training.run_settings import RunSettings

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '2', '--epochs', '2', '--loader-workers', '0', '--seed', '3', '--lr', '1e-3']
CPU = torch.device('cpu')
DETECTOR = ['--method', 'td', '--detector', 'ssdlite320_mobilenet_v3_large', '--detector-epochs', '3',
            '--detector-batch-size', '4', '--detector-lr', '0.02', '--detector-optimizer', 'sgd',
            '--detector-lr-decay', '2', '--detector-eval-interval', '1']


def pose_and_detector(*flags) -> tuple[RunSettings, RunSettings]:
    args = train.cli(TINY + DETECTOR + list(flags))
    pose = RunSettings.from_args(args, CPU)
    detector = detector_training.DetectorRunSettings.from_args(args).run_settings(pose, pathlib.Path('r.detector.pkl'))
    return pose, detector


def test_the_detector_run_trains_with_the_pose_runs_acceleration_flags():
    pose, detector = pose_and_detector('--amp', 'bf16', '--channels-last', '--deterministic', '--ddp-no-sync-bn')
    assert detector.accelerate == pose.accelerate == AccelerateSettings(amp='bf16', channels_last=True,
                                                                      deterministic=True)
    assert detector.sync_batchnorm is pose.sync_batchnorm is False
    assert detector.seed == pose.seed == 3


@pytest.mark.skipif(not any(shutil.which(name) for name in ('g++', 'c++', 'clang++')),
                    reason='--compile on the CPU needs a C++ compiler')
def test_compile_reaches_the_detector_run():
    pose, detector = pose_and_detector('--compile', '--amp', 'fp16')
    assert detector.accelerate.compile and pose.accelerate.compile
    assert detector.accelerate.amp == 'fp16'


def test_the_detector_runs_own_flags_replace_the_pose_runs_and_nothing_else():
    pose, detector = pose_and_detector('--clip-grad-norm', '3', '--max-snapshots', '2', '--ema', '0.1',
                                       '--lr-schedule', 'milestones', '--lr-milestones', '1', '--lr-values', '1e-4',
                                       '--lr-warm-up-epochs', '2', '--lr-decay-factor', '0.5')
    assert (detector.trainer.epochs, detector.trainer.eval_interval, detector.trainer.ema) == (3, 1, 0.0)
    assert (pose.trainer.epochs, pose.trainer.ema) == (2, 0.1)
    assert detector.trainer.clip_grad_norm == pose.trainer.clip_grad_norm == 3.0
    assert detector.snapshots.max_snapshots == 2 and detector.snapshots.key_metric == 'test.mAP@50:95'
    assert (detector.optimizer.name, detector.optimizer.lr, detector.optimizer.momentum) == ('sgd', 0.02, 0.9)
    assert (detector.batch_size, pose.batch_size) == (4, 2)
    # the pose run's milestones do not reach the detector: its own decay at epoch 2, no warm-up
    assert pose.schedule.shape == 'milestones' and detector.schedule.shape == 'decay'
    assert detector.schedule(1.9) == 1.0 and detector.schedule(3.0) == pytest.approx(0.5)
    assert detector.resume.output == 'r.detector.pkl'


def test_recipe_and_settings_are_frozen_dataclasses():
    settings = RunSettings.from_args(train.cli(TINY), CPU)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.trainer.epochs = 4
    recipe = Recipe(network=torch.nn.Linear(1, 1), train_loader=[], val_loaders={}, meta={},
                    objective=lambda *batch: None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.network = torch.nn.Linear(1, 1)
    choice = network_factory.NetworkChoice.from_args(train.cli(TINY))
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.basenet = 'resnet18'
    assert (choice.basenet, choice.stride) == ('shufflenetv2k16', 16)


def test_a_recipe_has_a_loss_or_an_objective():
    with pytest.raises(ValueError, match='either a loss'):
        Recipe(network=torch.nn.Linear(1, 1), train_loader=[], val_loaders={}, meta={})


def test_checkpoint_is_read_once_per_run(tmp_path, monkeypatch):
    cache = ['--synthetic-cache-dir', str(tmp_path / 'cache')]
    args = train.cli(TINY + cache)
    network = network_factory.factory(args, datasets_factory.datamodule_from_args(args, 16).head_metas)
    checkpoint.save(tmp_path / 'start.pkl', network, epoch=0, meta={})
    loads = []
    load = checkpoint.load

    def counting_load(path, *rest, **kwargs):
        loads.append(pathlib.Path(path).name)
        return load(path, *rest, **kwargs)

    monkeypatch.setattr(checkpoint, 'load', counting_load)
    flags = [flag for flag in TINY if flag not in ('--basenet', 'shufflenetv2k16')]
    out = train.run(train.cli(flags + cache + ['--checkpoint', str(tmp_path / 'start.pkl'), '--epochs', '1',
                                               '--train-batches', '1', '--output', str(tmp_path / 'run.pkl')]))
    assert loads.count('start.pkl') == 1
    monkeypatch.setattr(checkpoint, 'load', load)
    saved = checkpoint.load(out)
    assert saved['meta']['args']['basenet'] == 'shufflenetv2k16' and saved['epoch'] == 1

"""Detector runs of top-down mode, on the shared training package: loss, evaluation, snapshots, exact resume."""

import pathlib

import pytest
import torch

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint
from openfields.topdown import detector_training
from openfields.training import distributed
from openfields.training.run_settings import RunSettings
from openfields.training.log import read_log

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '96', '--basenet', 'shufflenetv2k16', '--loader-workers', '0', '--seed', '3',
        '--detector', 'ssdlite320_mobilenet_v3_large', '--detector-pretrained', 'none', '--detector-lr', '1e-3',
        '--detector-batch-size', '2', '--detector-eval-interval', '1']


def detector_run(tmp_path, name: str, epochs: int, *extra) -> pathlib.Path:
    """Train a detector the way ``--method td`` does; the final checkpoint's path."""
    args = train.cli(TINY + ['--synthetic-cache-dir', str(tmp_path / 'cache'), '--detector-epochs', str(epochs),
                             '--output', str(tmp_path / f'{name}.pkl'), *extra])
    train.seed_everything(args.seed)
    base = datasets_factory.datamodule_from_args(args, 16)
    context = distributed.Context(distributed.Launch())
    device = torch.device('cpu')
    return detector_training.detector_for(detector_training.DetectorChoice.from_args(args),
                                          RunSettings.from_args(args, device), context, device, base, args.output)


def test_a_detector_run_writes_its_log_scores_and_a_best_snapshot_and_its_loss_falls(tmp_path):
    path = detector_run(tmp_path, 'run', 4)
    assert path == tmp_path / 'run.detector.pkl' and path.is_file()
    records = read_log(f'{path}.log').records
    losses = [r['loss'] for r in records if r['type'] == 'train-epoch']
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    tests = [r for r in records if r['type'] == 'test']
    assert len(tests) == 4 and all(0.0 <= r['metrics']['test.mAP@50:95'] <= 1.0 for r in tests)
    best = checkpoint.load(tmp_path / 'run.detector.best.pkl')
    assert best['meta']['best']['metric'] == 'test.mAP@50:95'
    assert checkpoint.load(path)['model']['detector']['name'] == 'ssdlite320_mobilenet_v3_large'


def test_a_resumed_detector_run_ends_bit_identical_to_a_straight_run(tmp_path):
    straight = checkpoint.load(detector_run(tmp_path / 'a', 'run', 2))
    detector_run(tmp_path / 'b', 'run', 1)
    resumed = checkpoint.load(detector_run(tmp_path / 'b', 'run', 2, '--detector-resume',
                                           str(tmp_path / 'b' / 'run.detector.pkl.epoch001')))
    a, b = straight['model']['state_dict'], resumed['model']['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_pose_checkpoint_is_refused_as_a_detector(tmp_path, tiny_checkpoint):
    with pytest.raises(checkpoint.CheckpointError, match='a pose model, not a detector'):
        detector_run(tmp_path, 'run', 1, '--detector-checkpoint', str(tiny_checkpoint))


def test_a_validation_set_smaller_than_a_batch_is_validated_in_one_smaller_batch(tmp_path):
    path = detector_run(tmp_path, 'run', 1, '--detector-batch-size', '4', '--detector-eval-interval', '0')
    records = read_log(f'{path}.log').records
    assert [r['n_batches'] for r in records if r['type'] == 'val-epoch'] == [1]  # 2 images, batch of 4


def test_too_few_training_images_for_a_batch_is_one_line(tmp_path):
    with pytest.raises(ValueError, match='--detector-batch-size 8: only 4 training images'):
        detector_run(tmp_path, 'run', 1, '--detector-batch-size', '8')


def test_the_pose_runs_acceleration_flags_reach_the_detector_run(tmp_path):
    path = detector_run(tmp_path, 'run', 1, '--channels-last', '--deterministic', '--detector-eval-interval', '0')
    saved = checkpoint.load(path)
    accelerate = saved['meta']['run']['accelerate']
    assert (accelerate['channels_last'], accelerate['deterministic'], accelerate['amp']) == (True, True, 'off')
    assert saved['meta']['run']['trainer']['epochs'] == 1 and saved['meta']['run']['optimizer']['lr'] == 1e-3
    records = read_log(f'{path}.log').records
    losses = [r['loss'] for r in records if r['type'] == 'train-epoch']
    assert len(losses) == 1 and 0 < losses[0] < float('inf')

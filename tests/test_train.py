"""``python -m openfields.train``: outputs, logs, checkpoints, flags and bad input."""

import datetime
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

from openfields import eval as eval_cli
from openfields import predict as predict_cli
from openfields import train
from openfields.metric.coco import KEYPOINT_STAT_NAMES
from openfields.network import checkpoint, factory
from openfields.training import run_files
from openfields.training.run_settings import RunSettings
from openfields.training.log import read

# a small, fast run: a few tiny synthetic images, two epochs of two batches
TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '2', '--epochs', '2', '--loader-workers', '0', '--display-interval', '1',
        '--seed', '3', '--lr', '1e-3']


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('synthetic-cache')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp('run') / 'model.pkl'
    args = train.cli(TINY + ['--synthetic-cache-dir', str(cache_dir), '--output', str(out)])
    train.run(args)
    return out


def test_run_writes_a_checkpoint_per_epoch_and_a_final_one(tiny_run):
    assert tiny_run.is_file()
    assert sorted(p.name for p in tiny_run.parent.glob('model.pkl.epoch*')) == \
        ['model.pkl.epoch001', 'model.pkl.epoch002']
    assert not list(tiny_run.parent.glob('.*.tmp'))  # no temporary files left behind


def test_checkpoint_loads_weights_only_and_rebuilds_the_model(tiny_run):
    ckpt = torch.load(tiny_run, map_location='cpu', weights_only=True)
    assert ckpt['epoch'] == 2
    model = factory.from_checkpoint(checkpoint.load(tiny_run)).eval()
    assert [m.full_name for m in model.head_metas] == ['synthetic.cif', 'synthetic.caf']
    assert model.head_metas[0].stride == 16
    image = torch.randn(1, 3, 65, 65)
    again = factory.from_checkpoint(checkpoint.load(tiny_run)).eval()
    with torch.no_grad():
        for a, b in zip(model(image), again(image)):
            assert torch.equal(a, b)
    assert model(image)[0].shape == (1, 17, 5, 5, 5)


def test_log_starts_with_the_resolved_command_and_version(tiny_run):
    records = read(f'{tiny_run}.log')
    process = records[0]
    assert process['type'] == 'process'
    assert process['argv'][1:] == TINY + ['--synthetic-cache-dir', process['args']['synthetic_cache_dir'],
                                          '--output', str(tiny_run)]
    assert process['args']['lr'] == 1e-3 and process['args']['basenet'] == 'shufflenetv2k16'
    assert process['args']['momentum'] == 0.9  # defaults are resolved too
    assert re.fullmatch(r'\d+\.\d+\.\d+(\+\d+\.g[0-9a-f]{7}(\.dirty)?)?', process['version'])
    assert process['cpu_threads'] == torch.get_num_threads()
    assert process['omp_wait_policy'] == os.environ.get('OMP_WAIT_POLICY')  # PASSIVE on a busy machine


def test_log_has_train_records_per_display_interval_and_epoch_means(tiny_run):
    records = read(f'{tiny_run}.log')
    config = next(r for r in records if r['type'] == 'config')
    assert config['field_names'] == [f'synthetic.{h}.{c}' for h in ('cif', 'caf') for c in ('c', 'vec', 'scales')]
    batches = [r for r in records if r['type'] == 'train']
    assert [(r['epoch'], r['batch']) for r in batches] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in batches:
        assert set(r['head_losses']) == set(config['field_names'])
        assert r['loss'] == pytest.approx(sum(r['head_losses'].values()), rel=1e-4)
        assert r['lr'] > 0 and r['time'] > 0 and r['data_time'] >= 0
        assert r['threads'] == torch.get_num_threads()  # fixed here: tests/conftest.py
    epochs = [r for r in records if r['type'] == 'train-epoch']
    assert [r['epoch'] for r in epochs] == [1, 2]
    assert epochs[0]['loss'] == pytest.approx((batches[0]['loss'] + batches[1]['loss']) / 2, rel=1e-6)
    assert [r['batches_per_dataset'] for r in epochs] == [{'synthetic': 2}, {'synthetic': 2}]
    assert [(r['epoch'], r['dataset']) for r in records if r['type'] == 'val-epoch'] == \
        [(1, 'synthetic'), (2, 'synthetic')]


def test_a_run_without_basenet_or_output_file_is_named_after_the_default_basenet(tmp_path):
    argv = [a for a in TINY if a not in ('--basenet', 'shufflenetv2k16')]
    assert '--basenet' not in argv
    path = train.run(train.cli(argv + ['--synthetic-cache-dir', str(tmp_path / 'cache'), '--output', f'{tmp_path}/']))
    assert re.fullmatch(rf'{factory.DEFAULT_BASENET}-\d{{6}}-\d{{6}}-synthetic-[0-9a-f]{{8}}\.pkl', path.name)
    assert checkpoint.load(path)['model']['basenet']['name'] == factory.DEFAULT_BASENET


def test_default_output_name_has_basenet_time_dataset_and_token(tmp_path):
    name = run_files.default_name('resnet18', 'synthetic', datetime.datetime(2026, 11, 20, 13, 45, 7), 'argv',
                                  environ={})
    path = run_files.output_path(f'{tmp_path}/', name)
    assert path.parent == tmp_path
    assert re.fullmatch(r'resnet18-261120-134507-synthetic-[0-9a-f]{8}\.pkl', path.name)
    slurm = run_files.default_name('resnet18', 'synthetic', datetime.datetime(2026, 11, 20, 13, 45, 7), 'argv',
                                   environ={'SLURM_JOB_ID': '42'})
    assert slurm == 'resnet18-261120-134507-synthetic-slurm42.pkl'
    assert run_files.output_path(None, name) == pathlib.Path('outputs') / name


ISSUE_FLAGS = ['--lr', '--momentum', '--nesterov', '--weight-decay', '--b-scale', '--clip-grad-value',
               '--clip-grad-norm', '--epochs', '--lr-decay', '--lr-decay-factor', '--lr-decay-epochs',
               '--lr-warm-up-epochs', '--lr-warm-up-factor', '--batch-size', '--train-batches',
               '--val-batches', '--val-interval', '--loader-workers', '--dataset', '--basenet',
               '--checkpoint', '--output', '--seed', '--device', '--ema', '--display-interval',
               '--lambdas', '--basenet-pretrained', '--batchnorm-eps', '--batchnorm-momentum',
               '--resnet-input-conv2-stride', '--resnet-block5-dilation', '--resnet-pool0-stride',
               '--cocokp-train-annotations', '--cocokp-val-annotations', '--cocokp-train-image-dir',
               '--cocokp-val-image-dir', '--cocokp-square-edge', '--cocokp-upsample', '--cocokp-no-augmentation',
               '--cocokp-extended-scale', '--cocokp-orientation-invariant', '--synthetic-seed']


def test_help_lists_every_flag():
    result = subprocess.run([sys.executable, '-m', 'openfields.train', '--help'], capture_output=True, text=True)
    assert result.returncode == 0
    missing = [flag for flag in ISSUE_FLAGS if not re.search(re.escape(flag) + r'\b', result.stdout)]
    assert missing == []


@pytest.mark.parametrize('argv, message', [
    (['--basenet', 'nonet'], "unknown --basenet 'nonet'"),
    (['--dataset', 'nodata'], "unknown --dataset 'nodata'"),
    (['--dataset', 'cocokp', '--cocokp-train-annotations', 'missing.json'],
     '--cocokp-train-annotations: annotation file not found: missing.json'),
    (['--lr', '-1'], '--lr must be positive'),
    (['--epochs', '0'], '--epochs must be >= 1'),
    (['--synthetic-hflip', '1.5'], '--synthetic-hflip is a probability'),
    (['--lambdas', '1', '2', '3'], '--lambdas needs one value per head'),
])
def test_bad_input_is_one_line_naming_the_flag_and_exit_2(argv, message, capsys, cache_dir):
    with pytest.raises(SystemExit) as exit_info:
        train.main(TINY + ['--synthetic-cache-dir', str(cache_dir)] + argv)  # later flags win
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_contradictory_basenet_and_checkpoint_is_rejected_by_the_parser():
    result = subprocess.run([sys.executable, '-m', 'openfields.train', '--basenet', 'resnet18',
                             '--checkpoint', 'x.pkl'], capture_output=True, text=True)
    assert result.returncode == 2
    assert 'not allowed with argument --basenet' in result.stderr
    assert 'Traceback' not in result.stderr


def test_malformed_annotations_exit_2_without_traceback(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    result = subprocess.run([sys.executable, '-m', 'openfields.train', '--dataset', 'cocokp',
                             '--cocokp-train-annotations', str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f'{bad}: not valid JSON' in result.stderr
    assert 'Traceback' not in result.stderr


def test_foreign_checkpoint_is_refused(tmp_path, capsys):
    foreign = tmp_path / 'foreign.pkl'
    torch.save({'model': 'something else'}, foreign)
    with pytest.raises(SystemExit) as exit_info:
        train.main(['--checkpoint', str(foreign), '--epochs', '1'])
    assert exit_info.value.code == 2
    assert 'not an openfields checkpoint' in capsys.readouterr().err


def test_non_finite_loss_stops_naming_the_component_and_keeps_the_last_checkpoint(
        tmp_path, cache_dir, monkeypatch, capsys):
    from openfields.network import heads
    original = heads.CompositeField.forward
    calls = {'n': 0}

    def poisoned(self, x):
        out = original(self, x)
        if self.meta.name == 'caf':
            calls['n'] += 1
            if calls['n'] > 3:  # epoch 1 (2 train + 1 val batches) is fine, epoch 2 breaks
                out = out.clone()
                out[:, :, 2] = math.nan
        return out

    monkeypatch.setattr(heads.CompositeField, 'forward', poisoned)
    out = tmp_path / 'nan.pkl'
    with pytest.raises(SystemExit) as exit_info:
        train.main(TINY + ['--synthetic-cache-dir', str(cache_dir), '--output', str(out), '--val-batches', '1'])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'synthetic.caf.vec is not finite' in err
    assert checkpoint.load(f'{out}.epoch001')['epoch'] == 1
    assert not (tmp_path / 'nan.pkl.epoch002').exists() and not out.exists()
    assert read(f'{out}.log')[-1]['type'] == 'error'


def test_stability_rule_warning(caplog, cache_dir):
    def check(*flags):
        args = train.cli(TINY + list(flags))
        settings = RunSettings.from_args(args, torch.device('cpu'))
        train.check_stability_rule(settings, factory.NetworkChoice.from_args(args))

    with caplog.at_level('WARNING'):
        check('--lr', '0.01', '--clip-grad-value', '10')
    assert 'lr * clip_grad_value <= sqrt(eps)' in caplog.text
    caplog.clear()
    check('--lr', '0.0003', '--clip-grad-value', '10')
    assert caplog.text == ''


def test_every_flag_is_documented_in_the_cli_reference():
    parser_help = subprocess.run([sys.executable, '-m', 'openfields.train', '--help'],
                                 capture_output=True, text=True).stdout
    flags = set(re.findall(r'(?<![\w-])(--[a-z0-9][a-z0-9-]*[a-z0-9])', parser_help))
    reference = (pathlib.Path(__file__).parent.parent / 'docs' / 'cli.md').read_text()
    undocumented = sorted(f for f in flags if not re.search(re.escape(f) + r'(?![\w-])', reference))
    assert undocumented == []


def test_json_log_is_valid_json_per_line(tiny_run):
    for line in open(f'{tiny_run}.log'):
        json.loads(line)


def test_eval_interval_logs_test_metrics_keeps_the_best_snapshot_and_trains_the_same_weights(
        tiny_run, cache_dir, tmp_path):
    out = tmp_path / 'evaluated.pkl'
    train.run(train.cli(TINY + ['--synthetic-cache-dir', str(cache_dir), '--output', str(out),
                                '--eval-interval', '1', '--coco-eval-long-edge', '0']))
    tests = [r for r in read(f'{out}.log') if r['type'] == 'test']
    assert [(r['epoch'], r['dataset']) for r in tests] == [(1, 'synthetic'), (2, 'synthetic')]
    for r in tests:
        assert list(r['metrics']) == [f'test.{name}' for name in KEYPOINT_STAT_NAMES]
        assert all(isinstance(v, float) for v in r['metrics'].values())
    values = [r['metrics']['test.AP'] for r in tests]
    best_epoch = values.index(max(values)) + 1  # the first of equal values: only a strictly better one replaces
    best = checkpoint.load(tmp_path / 'evaluated.best.pkl')
    assert best['epoch'] == best_epoch
    assert best['meta']['best'] == {'epoch': best_epoch, 'metric': 'test.AP', 'value': max(values),
                                    'larger_is_better': True}
    # evaluating (eval mode, its own loader) changes nothing of what is trained
    final, plain = checkpoint.load(out)['model']['state_dict'], checkpoint.load(tiny_run)['model']['state_dict']
    assert all(torch.equal(final[k], plain[k]) for k in plain)

    # the best snapshot is a checkpoint for eval and predict; eval scores it as training did
    stats = eval_cli.run(eval_cli.parser().parse_args(
        TINY[:10] + ['--synthetic-cache-dir', str(cache_dir), '--coco-eval-long-edge', '0', '--loader-workers', '0',
                     '--checkpoint', str(tmp_path / 'evaluated.best.pkl'), '--device', 'cpu']))[0]
    assert {f'test.{k}': stats[k] for k in KEYPOINT_STAT_NAMES} == tests[best_epoch - 1]['metrics']
    image = sorted(cache_dir.glob('*/val/images/*'))[0]
    assert predict_cli.run(predict_cli.parser().parse_args(
        [str(image), '--checkpoint', str(tmp_path / 'evaluated.best.pkl'), '--json-output', str(tmp_path)])) == 0
    assert (tmp_path / f'{image.name}.predictions.json').is_file()

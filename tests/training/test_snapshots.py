"""Snapshots: the best one follows the key metric, regular ones rotate, the best score survives a resume."""

import argparse
import math

import pytest

from openfields import train
from openfields.training import snapshots
from openfields.metric import scoring
from openfields.network import checkpoint
from openfields.training.log import read

# --- the key metric ---------------------------------------------------------------------------------------

NAMES = {'cocokp': ['AP', 'AP50', 'AR'], 'dlc': ['test_pixel_error', 'test_pck', 'AP']}


def settings(key=None, direction=None) -> snapshots.SnapshotSettings:
    return snapshots.SnapshotSettings(key_metric=key, larger_is_better=direction)


@pytest.mark.parametrize('name, larger', [
    ('AP', True), ('AP50', True), ('APM', True), ('AR100', True), ('mAP@50:95', True), ('AP_hard', True),
    ('test_pck', True), ('test_pixel_error', False), ('rmse_pcutoff', False), ('test.rmse', False),
    ('error_px', False), ('loss', None), ('area', None)])
def test_direction_follows_the_words_of_the_name(name, larger):
    assert snapshots.larger_is_better(name) is larger


def test_default_key_metric_is_the_first_score_of_the_first_dataset():
    key = snapshots.key_metric(settings(), NAMES)
    assert key == snapshots.KeyMetric(name='test.AP', dataset='cocokp', stat='AP', larger_is_better=True)
    key = snapshots.key_metric(settings(), {'dlc': NAMES['dlc']})
    assert (key.name, key.stat, key.larger_is_better) == ('test.test_pixel_error', 'test_pixel_error', False)


def test_a_dataset_is_named_between_test_and_the_score():
    key = snapshots.key_metric(settings('test.dlc.test_pck'), NAMES)
    assert (key.dataset, key.stat, key.larger_is_better) == ('dlc', 'test_pck', True)
    key = snapshots.key_metric(settings('test.dlc.AP', direction=False), NAMES)
    assert (key.dataset, key.stat, key.larger_is_better) == ('dlc', 'AP', False)  # the flag wins


@pytest.mark.parametrize('name', ['test.nope', 'AP', 'test.dlc.nope', 'test.test_pck'])
def test_a_score_the_metrics_do_not_produce_is_an_error_listing_the_available_ones(name):
    with pytest.raises(ValueError, match=f'--key-metric {name}: not a score') as error:
        snapshots.key_metric(settings(name), NAMES)
    assert 'available: test.AP, test.AP50, test.AR, test.cocokp.AP, ' in str(error.value)
    assert 'test.dlc.test_pixel_error' in str(error.value)


@pytest.mark.parametrize('dlc_name, stat, larger', [
    ('test.mAP', 'AP', True), ('test.mAR', 'AR', True), ('test.rmse', 'test_pixel_error', False),
    ('test.rmse_pcutoff', 'test_pixel_error_pcutoff', False), ('test.dlc.mAP', 'AP', True)])
def test_deeplabcut_metric_names_are_read_as_openfields_scores(dlc_name, stat, larger):
    names = {'dlc': ['AP', 'AR', 'test_pixel_error', 'test_pixel_error_pcutoff']}
    key = snapshots.key_metric(settings(dlc_name), names)
    assert (key.dataset, key.stat, key.larger_is_better) == ('dlc', stat, larger)


def test_a_score_of_unknown_direction_needs_a_flag():
    with pytest.raises(ValueError, match='--key-metric test.loss: is larger or smaller better'):
        snapshots.key_metric(settings('test.loss'), {'x': ['loss']})
    assert snapshots.key_metric(settings('test.loss', direction=False), {'x': ['loss']}).larger_is_better is False


def flags(**values) -> argparse.Namespace:
    defaults = dict(max_snapshots=0, key_metric=None, key_metric_asc=False, key_metric_desc=False,
                    save_optimizer_state=True, eval_interval=0)
    return argparse.Namespace(**{**defaults, **values})


@pytest.mark.parametrize('values, message', [
    (dict(key_metric='test.AP'), '--key-metric needs --eval-interval N > 0'),
    (dict(key_metric_desc=True), '--key-metric-desc needs --eval-interval'),
    (dict(max_snapshots=-1), '--max-snapshots must be >= 0'),
])
def test_settings_refuse_flags_that_cannot_work(values, message):
    with pytest.raises(ValueError, match=message):
        snapshots.SnapshotSettings.from_args(flags(**values))


def test_asc_and_desc_are_mutually_exclusive(capsys):
    with pytest.raises(SystemExit):
        train.cli(['--key-metric-asc', '--key-metric-desc'])
    assert 'not allowed with argument' in capsys.readouterr().err


# --- the best score ---------------------------------------------------------------------------------------

def follow(key: snapshots.KeyMetric, values) -> list[int]:
    """Feed ``values`` (one per epoch) to a tracker; the epochs that became the best."""
    best = snapshots.BestTracker(key)
    return [epoch for epoch, value in enumerate(values, start=1)
            if best.update(epoch, {key.dataset: {key.stat: value, 'other': 0.0}})]


def test_the_best_follows_a_larger_is_better_metric_strictly_and_never_nan():
    key = snapshots.key_metric(settings('test.AP'), NAMES)
    assert follow(key, [math.nan, 0.2, 0.5, 0.5, 0.4, math.nan, 0.7, -1.0]) == [2, 3, 7]


def test_the_best_follows_a_smaller_is_better_metric():
    key = snapshots.key_metric(settings('test.dlc.test_pixel_error'), NAMES)
    assert follow(key, [9.0, 7.5, 8.0, 7.5, math.nan, 3.0, 3.1]) == [1, 2, 6]


def test_a_restored_best_is_kept_only_for_the_same_metric_and_direction():
    key = snapshots.key_metric(settings('test.AP'), NAMES)
    best = snapshots.BestTracker(key)
    best.restore({'epoch': 4, 'metric': 'test.AP', 'value': 0.6, 'larger_is_better': True}, 'resumed')
    assert not best.update(5, {'cocokp': {'AP': 0.55}}) and best.best['epoch'] == 4
    best.restore({'epoch': 3, 'metric': 'test.AP', 'value': 0.5, 'larger_is_better': True}, 'worse')
    assert best.best['value'] == 0.6
    other = snapshots.BestTracker(key)
    other.restore({'epoch': 4, 'metric': 'test.AR', 'value': 0.9, 'larger_is_better': True}, 'other metric')
    assert other.best is None


# --- in training ------------------------------------------------------------------------------------------

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
        '--basenet', 'shufflenetv2k16', '--batch-size', '2', '--train-batches', '1', '--val-batches', '1',
        '--loader-workers', '0', '--seed', '5', '--lr', '1e-4', '--coco-eval-long-edge', '0']


@pytest.fixture(scope='module')
def argv(tmp_path_factory):
    return TINY + ['--synthetic-cache-dir', str(tmp_path_factory.mktemp('synthetic-cache'))]


def scripted_ap(monkeypatch, values):
    """Evaluations return the next of ``values`` as AP (and nothing else); the real metric is not run."""
    values = iter(values)
    monkeypatch.setattr(scoring.TestSet, 'score', lambda self, network, device: {'AP': next(values)})


def test_rotation_keeps_the_k_newest_regular_snapshots_plus_the_best(argv, tmp_path, monkeypatch):
    scripted_ap(monkeypatch, [0.1, 0.5, 0.2, 0.4, 0.3])
    out = tmp_path / 'm.pkl'
    train.run(train.cli(argv + ['--epochs', '5', '--eval-interval', '1', '--save-epochs', '2',
                                '--max-snapshots', '2', '--output', str(out)]))
    # regular snapshots at epochs 2, 4 and 5 (the last); the oldest is rotated away
    assert sorted(p.name for p in tmp_path.glob('m*')) == \
        ['m.best.pkl', 'm.pkl', 'm.pkl.config.json', 'm.pkl.epoch004', 'm.pkl.epoch005', 'm.pkl.log']
    best = checkpoint.load(tmp_path / 'm.best.pkl')
    assert best['epoch'] == 2
    assert best['meta']['best'] == {'epoch': 2, 'metric': 'test.AP', 'value': 0.5, 'larger_is_better': True}
    assert best['training_state']['best'] == best['meta']['best']
    tests = [(r['epoch'], r['metrics']) for r in read(f'{out}.log') if r['type'] == 'test']
    assert tests == [(e, {'test.AP': v}) for e, v in enumerate([0.1, 0.5, 0.2, 0.4, 0.3], start=1)]


def test_the_best_score_survives_a_resume(argv, tmp_path, monkeypatch):
    out = tmp_path / 'm.pkl'
    common = argv + ['--eval-interval', '1', '--output', str(out)]
    scripted_ap(monkeypatch, [0.3, 0.5])
    train.run(train.cli(common + ['--epochs', '2']))
    assert checkpoint.load(tmp_path / 'm.best.pkl')['meta']['best']['epoch'] == 2

    # from epoch 1 (its state knows only 0.3): the best snapshot on disk (0.5) still counts
    scripted_ap(monkeypatch, [0.4])
    train.run(train.cli(common + ['--epochs', '2', '--resume', f'{out}.epoch001']))
    assert checkpoint.load(tmp_path / 'm.best.pkl')['meta']['best']['value'] == 0.5
    assert checkpoint.load(f'{out}.epoch002')['training_state']['best']['value'] == 0.5

    scripted_ap(monkeypatch, [0.45, 0.6])
    train.run(train.cli(common + ['--epochs', '4', '--resume', f'{out}.epoch002']))
    assert checkpoint.load(tmp_path / 'm.best.pkl')['meta']['best'] == \
        {'epoch': 4, 'metric': 'test.AP', 'value': 0.6, 'larger_is_better': True}


def test_an_unknown_key_metric_stops_at_start_up_listing_the_available_ones(argv, tmp_path, capsys):
    out = tmp_path / 'm.pkl'
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv + ['--eval-interval', '1', '--key-metric', 'test.mAPP', '--output', str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '--key-metric test.mAPP: not a score of the evaluated datasets; available: ' \
        'test.AP, test.AP50' in err[0] and 'test.synthetic.ARL' in err[0]
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
    with pytest.raises(SystemExit):
        train.main(argv + ['--key-metric', 'test.AP', '--output', str(out)])
    assert '--key-metric needs --eval-interval N > 0' in capsys.readouterr().err


def test_without_optimizer_state_snapshots_keep_schedule_and_position_and_resume_afresh(
        argv, tmp_path, monkeypatch, caplog):
    scripted_ap(monkeypatch, [0.2, 0.1])
    out = tmp_path / 'm.pkl'
    common = argv + ['--eval-interval', '1', '--no-save-optimizer-state', '--output', str(out)]
    train.run(train.cli(common + ['--epochs', '1']))
    for path in (f'{out}.epoch001', tmp_path / 'm.best.pkl'):
        state = checkpoint.load(path)['training_state']
        assert state['trainer']['optimizer'] is None
        assert state['trainer']['scheduler']['last_epoch'] == 1 and state['position']['epoch'] == 1
    caplog.set_level('WARNING')
    train.run(train.cli(common + ['--epochs', '2', '--resume', f'{out}.epoch001']))
    assert 'no optimizer state (--no-save-optimizer-state); the optimizer starts afresh' in caplog.text
    assert checkpoint.load(out)['epoch'] == 2

"""Numbers as DeepLabCut reads them (YAML 1.2: ``1e-4`` is a float), every value checked against what its key
expects, and schedulers (nested ones included) stepped through the run before it starts."""

import json
import pathlib

import pytest

from openfields import config, train
from openfields.training import optimize
from openfields.training.log import read

yaml = pytest.importorskip('yaml')

SEED = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'seeds' / '000_22c154e3c921f3c2.txt'
DLC_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'

# DeepLabCut's configuration guide, "Runner": its examples as they appear there (indented under runner:)
GUIDE_SGD = '''  # SGD with initial learning rate 1e-3 and momentum 0.9
  #  see https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
  optimizer:
    type: SGD
    params:
      lr: 1e-3
      momentum: 0.9
'''
GUIDE_ADAMW = '''  # AdamW optimizer with initial learning rate 1e-4
  #  see https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
  optimizer:
    type: AdamW
    params:
      lr: 1e-4
'''
GUIDE_LR_LIST = '''  # reduce to 1e-5 at epoch 160 and 1e-6 at epoch 190
  scheduler:
    type: LRListScheduler
    params:
      lr_list: [ [ 1e-5 ], [ 1e-6 ] ]
      milestones: [ 160, 190 ]
'''
GUIDE_STEP_LR = '''  # Decays the learning rate of each parameter group by gamma every step_size epochs
  #   see https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.StepLR.html
  scheduler:
    type: StepLR
    params:
      step_size: 100
      gamma: 0.1
'''


def read_yaml(tmp_path, text, name='pytorch_config.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return config.read(path)


@pytest.mark.skipif(not SEED.is_file(), reason=f'no copy of the guide at {SEED}')
def test_the_snippets_are_the_guides():
    guide = SEED.read_text()
    assert all(snippet in guide for snippet in (GUIDE_SGD, GUIDE_ADAMW, GUIDE_LR_LIST, GUIDE_STEP_LR))


def test_the_guides_snippets_hold_floats(tmp_path):
    assert read_yaml(tmp_path, GUIDE_SGD)['optimizer']['params'] == {'lr': 1e-3, 'momentum': 0.9}
    assert read_yaml(tmp_path, GUIDE_ADAMW)['optimizer']['params'] == {'lr': 1e-4}
    lr_list = read_yaml(tmp_path, GUIDE_LR_LIST)['scheduler']['params']['lr_list']
    assert lr_list == [[1e-5], [1e-6]] and isinstance(lr_list[0][0], float)
    assert read_yaml(tmp_path, GUIDE_STEP_LR)['scheduler']['params'] == {'step_size': 100, 'gamma': 0.1}
    inline = read_yaml(tmp_path, 'runner:\n  optimizer: {type: AdamW, params: {lr: 1e-4}}\n')
    assert inline['runner']['optimizer']['params']['lr'] == 1e-4


def test_the_guides_runner_sets_the_flags(tmp_path):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text('runner:\n' + GUIDE_ADAMW + GUIDE_LR_LIST)
    args = train.cli(['--config', str(path)])
    assert (args.optimizer_class, args.lr) == ('AdamW', 1e-4)
    assert (args.lr_schedule, args.lr_milestones, args.lr_values) == ('milestones', [160, 190], [1e-5, 1e-6])
    path.write_text('runner:\n' + GUIDE_SGD + GUIDE_STEP_LR)
    args = train.cli(['--config', str(path), '--epochs', '250'])
    assert (args.optimizer_class, args.lr, args.scheduler_class) == ('SGD', 1e-3, 'StepLR')
    schedule = optimize.LearningRateSchedule.from_args(args)
    assert [1e-3 * schedule(e) for e in (99.5, 100.0, 210.0)] == pytest.approx([1e-3, 1e-4, 1e-5])


def test_yaml_1_2_numbers_and_booleans_ints_unchanged(tmp_path):
    values = read_yaml(tmp_path, 'a: 1e-4\nb: 5e-05\nc: 1E3\nd: -.5e+2\ne: .inf\nf: 3\ng: -7\nh: 0.25\n'
                                 'i: yes\nj: no\nk: on\nl: off\nm: true\nn: False\no: ~\np: 1e\nq: "1e-4"\n')
    assert values == {'a': 1e-4, 'b': 5e-05, 'c': 1000.0, 'd': -50.0, 'e': float('inf'), 'f': 3, 'g': -7,
                      'h': 0.25, 'i': 'yes', 'j': 'no', 'k': 'on', 'l': 'off', 'm': True, 'n': False, 'o': None,
                      'p': '1e', 'q': '1e-4'}
    assert [type(values[k]) for k in 'acfm'] == [float, float, int, bool]
    assert yaml.safe_load('a: 1e-4\nb: yes\n') == {'a': '1e-4', 'b': True}  # PyYAML's own loader is left as it is


def test_an_openfields_yaml_config_reads_the_same_way(tmp_path, capsys):
    path = tmp_path / 'flags.yaml'
    path.write_text('lr: 1e-4\nlr-warm-up-factor: 1E-2\n')
    args = train.cli(['--config', str(path)])
    assert (args.lr, args.lr_warm_up_factor) == (1e-4, 0.01)
    path.write_text('nesterov: yes\n')  # YAML 1.2: a string, not a switch value
    with pytest.raises(SystemExit) as stop:
        train.cli(['--config', str(path)])
    assert stop.value.code == 2 and "key 'nesterov': a switch takes true or false, got 'yes'" in capsys.readouterr().err


def nested_cosine(**cosine_params):
    return {'type': 'SequentialLR',
            'params': {'schedulers': [{'type': 'LinearLR', 'params': {'start_factor': 0.1, 'total_iters': 2}},
                                      {'type': 'CosineAnnealingLR', 'params': cosine_params}],
                       'milestones': [3]}}


@pytest.mark.parametrize('mapping, key, message', [
    ({'runner': {'scheduler': nested_cosine(T_max=10, eta_min='5e-05')}},
     'runner.scheduler.params.schedulers[1].params.eta_min',
     "CosineAnnealingLR takes a number here, got the string '5e-05' (quoted in the file?"),
    ({'runner': {'scheduler': nested_cosine(T_max=0)}}, 'runner.scheduler.params.schedulers[1]',
     'CosineAnnealingLR fails when stepped after epoch 3: float division by zero'),
    ({'runner': {'scheduler': nested_cosine(T_max=10, eta_min=0, eta_max=1)}},
     'runner.scheduler.params.schedulers[1].params.eta_max', "no parameter 'eta_max'"),
    ({'runner': {'scheduler': {'type': 'OneCycleLR', 'params': {'max_lr': 1e-3, 'total_steps': 3}}},
      'train_settings': {'epochs': 6}},
     'runner.scheduler', 'OneCycleLR fails when stepped after epoch 4: Tried to step 4 times'),
    ({'runner': {'scheduler': {'type': 'LRListScheduler', 'params': {'milestones': [5], 'lr_list': [[1e-5, 1e-6]]}}}},
     'runner.scheduler.params.lr_list[0]', 'one learning rate per parameter group'),
    ({'runner': {'optimizer': {'type': 'AdamW', 'params': {'lr': '1e-4'}}}}, 'runner.optimizer.params.lr',
     "must be a number, got the string '1e-4' (quoted"),
    ({'runner': {'optimizer': {'type': 'AdamW', 'params': {'lr': 1e-4, 'weight_decay': 'small'}}}},
     'runner.optimizer.params.weight_decay', "AdamW takes a number here, got the string 'small'"),
    ({'train_settings': {'epochs': 'ten'}}, 'train_settings.epochs', "must be a number, got the string 'ten'"),
])
def test_a_bad_value_stops_the_run_before_it_writes_anything(tmp_path, capsys, mapping, key, message):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(json.dumps(mapping))  # JSON is YAML; PyYAML's dump would leave the string '5e-05' unquoted
    with pytest.raises(SystemExit) as stop:
        train.main(['--config', str(path), '--output', str(tmp_path / 'run.pkl')])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert f'{path}: key {key}: ' in err and message in err
    assert [p.name for p in tmp_path.iterdir()] == ['pytorch_config.yaml']


# rtmpose-style, shrunk to 5 epochs: per epoch 1e-5 (LinearLR from 0.1 x lr), 1e-4 (milestone 1: the cosine
# starts at lr), 7.5e-5 (5e-05 + (1e-4 - 5e-05) (1 + cos(pi / 2)) / 2), 7.5e-5 (milestone 3: LRListScheduler
# keeps the rate), 1e-5 (its milestone 1)
NESTED_RUN = '''runner:
  optimizer: {type: AdamW, params: {lr: 1e-4}}
  scheduler:
    type: SequentialLR
    params:
      schedulers:
      - type: LinearLR
        params: {start_factor: 0.1, total_iters: 1}
      - type: CosineAnnealingLR
        params: {T_max: 2, eta_min: 5e-05}
      - type: LRListScheduler
        params: {milestones: [1], lr_list: [[1e-5]]}
      milestones: [1, 3]
train_settings: {epochs: 5, batch_size: 2, dataloader_workers: 0, display_iters: 1}
'''


@pytest.mark.skipif(not (DLC_PROJECT / 'config.yaml').is_file(), reason=f'no DeepLabCut project at {DLC_PROJECT}')
def test_a_nested_scheduler_trains_and_resumes_with_the_learning_rates_computed_by_hand(tmp_path):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(NESTED_RUN)
    out = tmp_path / 'run.pkl'
    shrink = ['--dlc-project', str(DLC_PROJECT), '--basenet', 'shufflenetv2k16', '--train-batches', '1',
              '--val-batches', '1', '--dlc-square-edge', '97', '--dlc-rescale-images', '0.25',
              '--coco-eval-long-edge', '161', '--seed', '3']
    train.main(['--config', str(path), *shrink, '--epochs', '3', '--output', str(out)])
    train.main(['--config', str(path), *shrink, '--resume', f'{out}.epoch003'])  # to the file's 5 epochs
    rates = [(r['epoch'], r['lr']) for r in read(f'{out}.log') if r['type'] == 'train']
    assert [epoch for epoch, _ in rates] == [1, 2, 3, 4, 5]
    assert [lr for _, lr in rates] == pytest.approx([1e-5, 1e-4, 7.5e-5, 7.5e-5, 1e-5])

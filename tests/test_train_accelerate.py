"""``python -m openfields.train`` with ``--amp``, ``--channels-last``, ``--compile``, ``--deterministic``: the
flags are recorded like every other, the checkpoints are ordinary ones, and what cannot run says so."""

import json
import shutil

import pytest
import torch

from openfields import predict as predict_cli
from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint, factory as network_factory
from openfields.training import distributed, fit
from openfields.training.run_settings import RunSettings
from openfields.training.log import read

from test_train import TINY

ACCELERATE_ARGS = {'amp': 'bf16', 'channels_last': True, 'compile': False, 'cudnn_benchmark': False,
                   'deterministic': True}


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('synthetic-cache')


def tiny(cache_dir, out, *flags) -> list[str]:
    return TINY + ['--synthetic-cache-dir', str(cache_dir), '--output', str(out), *flags]


def state_dict_names(out) -> list[str]:
    return list(checkpoint.load(out)['model']['state_dict'])


def test_bf16_channels_last_deterministic_run_is_recorded_and_saves_an_ordinary_checkpoint(tmp_path, cache_dir):
    out = tmp_path / 'fast.pkl'
    before = torch.are_deterministic_algorithms_enabled()
    train.run(train.cli(tiny(cache_dir, out, '--epochs', '1', '--train-batches', '1', '--amp', 'bf16',
                             '--channels-last', '--deterministic')))
    assert torch.are_deterministic_algorithms_enabled() == before  # the switch ends with the run
    process = read(f'{out}.log')[0]
    config = json.loads((tmp_path / 'fast.pkl.config.json').read_text())  # keys are the flags' names
    meta_args = checkpoint.load(out)['meta']['args']
    for record in (process['args'], {k.replace('-', '_'): v for k, v in config.items()}, meta_args):
        assert {k: record[k] for k in ACCELERATE_ARGS} == ACCELERATE_ARGS
    train_losses = [r['loss'] for r in read(f'{out}.log') if r['type'] == 'train']
    assert len(train_losses) == 1 and 0 < train_losses[0] < float('inf')
    # weights saved in NHWC order load into a contiguous network: the same names, and predict runs on them
    args = train.cli(tiny(cache_dir, out))
    fresh = network_factory.factory(args, datasets_factory.datamodule_from_args(args, 16).head_metas)
    assert state_dict_names(out) == list(fresh.state_dict())
    image = sorted(cache_dir.glob('*/val/images/*'))[0]
    assert predict_cli.run(predict_cli.parser().parse_args(
        [str(image), '--checkpoint', str(out), '--json-output', str(tmp_path)])) == 0


def test_compile_trains_a_compiled_model_and_saves_the_network_itself(cache_dir, tmp_path):
    args = train.cli(tiny(cache_dir, tmp_path / 'plan.pkl', '--compile'))
    datamodule = datasets_factory.datamodule_from_args(args, 16)
    network = network_factory.factory(args, datamodule.head_metas)
    context = distributed.Context(distributed.Launch())
    settings = RunSettings.from_args(args, torch.device('cpu'))
    model = fit.training_model(network, settings, context, torch.device('cpu'))
    assert isinstance(model, torch._dynamo.eval_frame.OptimizedModule)  # pylint: disable=protected-access
    assert model._orig_mod is network  # pylint: disable=protected-access
    assert not any(name.startswith('_orig_mod.') for name in network.state_dict())
    assert [id(p) for p in model.parameters()] == [id(p) for p in network.parameters()]


@pytest.mark.parametrize('flags, message', [
    (['--compile'], '--compile on the CPU needs a C++ compiler'),
    (['--deterministic', '--cudnn-benchmark'], '--deterministic and --cudnn-benchmark exclude each other'),
])
def test_what_cannot_run_is_one_line_and_exit_2(flags, message, cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, 'which', lambda name: None)  # a machine without a C++ compiler
    monkeypatch.delenv('CXX', raising=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(tiny(cache_dir, tmp_path / 'refused.pkl', *flags))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_compiled_run_follows_the_eager_losses_and_its_checkpoint_loads_like_any_other(cache_dir, tmp_path):
    """About two minutes on 2 CPU cores: inductor compiles the forward and backward with g++."""
    common = ['--epochs', '1', '--train-batches', '2', '--ema', '0']
    eager, compiled = tmp_path / 'eager.pkl', tmp_path / 'compiled.pkl'
    train.run(train.cli(tiny(cache_dir, eager, *common)))
    train.run(train.cli(tiny(cache_dir, compiled, *common, '--compile')))
    losses = {out: [r['loss'] for r in read(f'{out}.log') if r['type'] in ('train', 'val-epoch')]
              for out in (eager, compiled)}
    assert len(losses[eager]) == 3
    assert losses[compiled] == pytest.approx(losses[eager], rel=1e-4)
    assert state_dict_names(compiled) == state_dict_names(eager)
    image = sorted(cache_dir.glob('*/val/images/*'))[0]
    assert predict_cli.run(predict_cli.parser().parse_args(
        [str(image), '--checkpoint', str(compiled), '--json-output', str(tmp_path)])) == 0

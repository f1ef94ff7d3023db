"""A training run as a whole: one run per output, what a killed run leaves behind, non-finite weights
never saved, output paths checked before any work."""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from openfields import logs, train
from openfields.network import checkpoint
from openfields.training import checkpointer as checkpointer_module
from openfields.training.distributed import Context, Launch
from openfields.training.lock import RunLock, RunLocked
from openfields.training.log import read
from openfields.training.run_files import Position, RunFiles
from openfields.training.snapshots import BestTracker, SnapshotSettings

TESTS = pathlib.Path(__file__).resolve().parents[1]
TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
        '--basenet', 'resnet18', '--no-basenet-pretrained', '--batch-size', '2', '--loader-workers', '0', '--seed', '5',
        '--lr', '1e-4',
        '--display-interval', '1']


@pytest.fixture(scope='module')
def argv(tmp_path_factory):
    return TINY + ['--synthetic-cache-dir', str(tmp_path_factory.mktemp('synthetic-cache'))]


def exit_code_and_stderr(capsys, argv) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


# --- outputs checked before any work ----------------------------------------------------------------------

def test_an_output_inside_a_regular_file_is_one_line_and_exit_2(argv, tmp_path, capsys):
    (tmp_path / 'afile').write_text('not a folder')
    code, err = exit_code_and_stderr(capsys, argv + ['--epochs', '1', '--output', str(tmp_path / 'afile' / 'x.pkl')])
    assert code == 2
    assert len(err) == 1 and '--output' in err[0] and 'afile is a file, not a folder' in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['afile']


# --- one run per output -----------------------------------------------------------------------------------

def test_a_second_run_into_the_same_output_is_refused_in_one_line(argv, tmp_path, capsys):
    out = tmp_path / 'm.pkl'
    with RunLock(RunFiles(out).lock):  # the first run, still training
        code, err = exit_code_and_stderr(capsys, argv + ['--epochs', '1', '--output', str(out)])
    assert code == 2
    assert len(err) == 1 and 'another training run' in err[0] and f'pid {os.getpid()}' in err[0]
    assert not RunFiles(out).log.exists() and not out.exists()  # nothing of the first run is touched


def test_the_lock_of_a_killed_run_is_taken_over_and_a_finished_run_leaves_none(argv, tmp_path, caplog):
    out = tmp_path / 'm.pkl'
    RunFiles(out).lock.write_text('host elsewhere pid 999999\n')  # a run killed with its lock file
    caplog.set_level('WARNING')
    train.run(train.cli(argv + ['--epochs', '1', '--train-batches', '1', '--output', str(out)]))
    assert 'taking over the lock of a run that ended without releasing it (host elsewhere pid 999999)' in caplog.text
    assert checkpoint.load(out)['epoch'] == 1
    assert not RunFiles(out).lock.exists()


def test_the_lock_is_exclusive_between_open_files():
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / 'x.lock'
        with RunLock(path):
            with pytest.raises(RunLocked, match='another training run'):
                RunLock(path).acquire()
        with RunLock(path):  # released: free again
            pass


# --- a run killed while writing a checkpoint --------------------------------------------------------------

def test_kill_during_a_checkpoint_write_then_resume_cleans_up_and_counts_each_epoch_once(argv, tmp_path):
    out = tmp_path / 'm.pkl'
    run = subprocess.run([sys.executable, str(TESTS / 'train_killed_in_write.py'), *argv, '--epochs', '3',
                          '--output', str(out)], env={**os.environ, 'KILL_EPOCH': '2'},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == -9, run.stderr
    stale = RunFiles(out).stale_temp_files()
    assert [p.name.split('.')[3] for p in stale] == ['epoch002']  # .m.pkl.epoch002.<pid>.tmp
    assert checkpoint.load(f'{out}.epoch001')['epoch'] == 1  # the last good checkpoint loads

    train.run(train.cli(argv + ['--epochs', '3', '--resume', 'auto', '--output', str(out)]))

    assert RunFiles(out).stale_temp_files() == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    records = read(RunFiles(out).log)
    assert [r['epoch'] for r in records if r['type'] == 'train-epoch'] == [1, 2, 3]  # epoch 2 was done twice
    assert [r['epoch'] for r in records if r['type'] == 'val-epoch'] == [1, 2, 3]
    run = logs.read_runs([str(RunFiles(out).log)])[0]
    assert sorted(run.train_epochs) == [1, 2, 3] and logs._status(run) == 'finished'


# --- non-finite weights -----------------------------------------------------------------------------------

def tiny_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net.head_metas = []
    return net


def test_non_finite_buffers_are_never_saved_and_the_message_says_what_exists(tmp_path):
    network = tiny_network()
    saver = checkpointer_module.Checkpointer(
        RunFiles(tmp_path / 'm.pkl'), network, Context(Launch()),
        facts=checkpointer_module.RunFacts(seed=1, world_size=1, batch_size=2, batches_per_epoch=2, schedule={}),
        meta={}, settings=SnapshotSettings(), best=BestTracker(None), epochs=3)
    network[1].running_var[2] = float('inf')  # what --lr 1e6 did to a BatchNorm layer
    with pytest.raises(checkpointer_module.NonFiniteWeightsError) as error:
        saver.save_epoch(Position(1, 0), {'optimizer': None}, snapshot=True)
    assert '1.running_var' in str(error.value)
    assert 'no checkpoint of this run was written' in str(error.value) and 'intact' not in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('lr', ['1e6'])
def test_a_diverged_run_exits_1_and_every_checkpoint_on_disk_is_finite(argv, tmp_path, capsys, lr):
    out = tmp_path / 'm.pkl'
    code, err = exit_code_and_stderr(capsys, argv + ['--epochs', '3', '--lr', lr, '--momentum', '0.9',
                                                     '--output', str(out)])
    assert code == 1
    assert 'intact' not in err[-1] and 'not finite' in err[-1]
    written = [p for _, p in RunFiles(out).resumable()]
    if written:
        assert f'the last good checkpoint is {written[-1]}' in err[-1]
    else:
        assert 'no checkpoint of this run was written' in err[-1]
    for path in written:
        state = checkpoint.load(path)['model']['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values() if v.dtype.is_floating_point)
    assert read(RunFiles(out).log)[-1]['type'] == 'error'

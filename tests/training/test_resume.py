"""Stop signals and ``--resume``: a stopped and resumed run ends with the weights of an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from openfields import train
from openfields.training import loop as trainer, preemption, resume
from openfields.network import checkpoint
from openfields.training.log import read


# 4 images, batch 2: 2 steps per epoch, 2 epochs; EMA on so that its state must survive too
TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
        '--basenet', 'shufflenetv2k16', '--batch-size', '2', '--epochs', '2', '--loader-workers', '0',
        '--seed', '5', '--lr', '1e-4', '--ema', '0.1', '--display-interval', '1']


@pytest.fixture(scope='module')
def argv(tmp_path_factory):
    return TINY + ['--synthetic-cache-dir', str(tmp_path_factory.mktemp('synthetic-cache'))]


@pytest.fixture(scope='module')
def uninterrupted(argv, tmp_path_factory):
    out = tmp_path_factory.mktemp('uninterrupted') / 'model.pkl'
    train.run(train.cli(argv + ['--output', str(out)]))
    return out


def sigterm_after_step(monkeypatch, step: int):
    """Send this process SIGTERM during training step ``step`` (1-based)."""
    original = trainer.Trainer.train_batch
    calls = {'n': 0}

    def train_batch(self, images, targets):
        calls['n'] += 1
        if calls['n'] == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, images, targets)

    monkeypatch.setattr(trainer.Trainer, 'train_batch', train_batch)


@pytest.mark.parametrize('step, resume_name', [(1, 'model.pkl.epoch000.batch000001'),  # inside epoch 1
                                               (2, 'model.pkl.epoch001')])  # its last step: epoch end
def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(
        argv, uninterrupted, tmp_path, monkeypatch, step, resume_name):
    out = tmp_path / 'model.pkl'
    sigterm_after_step(monkeypatch, step)
    with pytest.raises(train.Stopped) as stopped:
        train.run(train.cli(argv + ['--output', str(out)]))
    assert stopped.value.path == str(tmp_path / resume_name)
    assert not out.exists()
    monkeypatch.undo()

    train.run(train.cli(argv + ['--resume', stopped.value.path]))
    resumed, straight = (checkpoint.load(p)['model']['state_dict'] for p in (out, uninterrupted))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)  # bit for bit, buffers too
    assert not list(tmp_path.glob('*.batch*'))  # the mid-epoch checkpoint is obsolete once an epoch is saved
    records = read(f'{out}.log')
    assert [r['type'] for r in records].count('process') == 2
    stop = next(r for r in records if r['type'] == 'stopped')
    assert stop['signal'] == 'SIGTERM' and stop['checkpoint'] == stopped.value.path
    # every step is trained exactly once over the two processes
    steps = [(r['epoch'], r['batch']) for r in records if r['type'] == 'train']
    assert steps == [(e, b) for e in (1, 2) for b in range(2)]


def test_checkpoints_carry_the_training_state_and_the_final_model_does_not(uninterrupted):
    state = checkpoint.load(f'{uninterrupted}.epoch001')['training_state']
    assert state['position'] == {'epoch': 1, 'batches': 0}
    assert set(state['trainer']) == {'optimizer', 'scheduler', 'ema', 'n_clipped', 'grad_scaler'}
    newest = checkpoint.load(f'{uninterrupted}.epoch002')['training_state']
    assert newest['trainer']['optimizer']['state']  # momentum buffers: in the newest snapshot only
    assert state['trainer']['scheduler']['last_epoch'] == 2
    assert state['trainer']['ema']['swapped']  # the saved weights are the averages
    assert len(state['rng']) == 1 and set(state['rng'][0]) == {'python', 'numpy', 'torch', 'cuda'}
    assert (state['world_size'], state['batch_size'], state['batches_per_epoch']) == (1, 2, 2)
    assert state['output'] == str(uninterrupted)
    assert checkpoint.load(uninterrupted)['training_state'] is None


def test_only_the_newest_snapshot_keeps_the_optimizer_state(uninterrupted):
    older = checkpoint.load(f'{uninterrupted}.epoch001')['training_state']
    assert older['trainer']['optimizer'] is None  # rewritten without it once epoch002 was on disk
    assert older['trainer']['ema'] is not None and older['rng']  # the rest of the state stays
    sizes = {name: os.path.getsize(f'{uninterrupted}{name}') for name in ('.epoch001', '.epoch002', '')}
    # SGD momentum is one buffer per parameter (about the final model's size); the weights' EMA stays in both
    assert sizes['.epoch002'] - sizes['.epoch001'] > 0.9 * sizes['']


def test_resume_auto_starts_a_new_run_then_finds_it_complete(argv, tmp_path, caplog):
    out = tmp_path / 'auto.pkl'
    args = argv + ['--output', str(out), '--resume', 'auto', '--epochs', '1', '--train-batches', '1']
    train.run(train.cli(args))
    assert checkpoint.load(out)['epoch'] == 1
    caplog.set_level('INFO')
    train.run(train.cli(args))
    assert 'is complete (1 epochs); nothing to train' in caplog.text


def test_newest_checkpoint_is_the_furthest_position(tmp_path):
    for name in ('m.pkl.epoch001', 'm.pkl.epoch002', 'm.pkl.epoch001.batch000007', 'm.pkl.epoch002.batch000003',
                 'm.pkl.log', 'other.pkl.epoch009'):
        (tmp_path / name).touch()
    assert resume.newest_checkpoint(str(tmp_path / 'm.pkl')) == str(tmp_path / 'm.pkl.epoch002.batch000003')
    assert resume.newest_checkpoint(str(tmp_path / 'none.pkl')) is None


def test_resume_auto_under_slurm_finds_the_run_of_the_job(tmp_path):
    (tmp_path / 'resnet18-261120-134507-synthetic-slurm42.pkl.epoch003').touch()
    settings = resume.ResumeSettings.from_args(train.cli(['--resume', 'auto', '--output', f'{tmp_path}/']))
    assert resume.checkpoint_to_resume(settings, {'SLURM_JOB_ID': '42'}) == \
        str(tmp_path / 'resnet18-261120-134507-synthetic-slurm42.pkl.epoch003')
    assert resume.checkpoint_to_resume(settings, {'SLURM_JOB_ID': '43'}) is None


def test_main_exits_with_the_requeue_code_and_says_how_to_resume(argv, tmp_path, monkeypatch, capsys):
    sigterm_after_step(monkeypatch, 1)
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv + ['--output', str(tmp_path / 'm.pkl')])
    assert exit_info.value.code == preemption.EXIT_CODE == 75
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ('openfields.train: stopped: stopped by SIGTERM; '
                   f'continue with --resume {tmp_path}/m.pkl.epoch000.batch000001')


@pytest.mark.parametrize('extra, message', [
    (['--resume', 'missing.pkl'], '--resume: file not found: missing.pkl'),
    (['--resume', 'auto'], '--resume auto needs --output FILE'),
    (['--resume', 'x.pkl', '--checkpoint', 'y.pkl'], 'pass only one of them'),
])
def test_bad_resume_input_is_one_line_naming_the_flag(argv, extra, message, capsys, monkeypatch):
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    without_basenet = [a for a in argv if a not in ('--basenet', 'shufflenetv2k16')]
    with pytest.raises(SystemExit) as exit_info:
        train.main(without_basenet + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_final_checkpoint_cannot_be_resumed(argv, uninterrupted, capsys):
    with pytest.raises(SystemExit):
        train.main(argv + ['--resume', str(uninterrupted)])
    assert 'no training state in it (a final checkpoint); resume from its .epochNNN' in capsys.readouterr().err


def test_continuing_inside_an_epoch_needs_the_same_batches(uninterrupted):
    state = {'position': {'epoch': 0, 'batches': 2}, 'world_size': 1, 'batch_size': 2, 'batches_per_epoch': 3}
    with pytest.raises(ValueError, match='world size 1 -> 2, --batch-size 2 -> 1'):
        resume.check_compatible(state, world_size=2, batch_size=1, batches_per_epoch=3)
    resume.check_compatible({**state, 'position': {'epoch': 1, 'batches': 0}}, world_size=2, batch_size=1,
                            batches_per_epoch=3)  # at an epoch boundary: allowed (warning)


def test_a_signal_to_the_whole_process_group_spares_the_loader_workers(argv, tmp_path):
    # Slurm signals every process of a job step, the data loader's worker processes included
    out = tmp_path / 'group.pkl'
    command = [sys.executable, '-m', 'openfields.train', *argv, '--loader-workers', '1', '--epochs', '3',
               '--output', str(out)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        deadline = time.monotonic() + 300
        while not (out.with_name('group.pkl.log').exists()
                   and any(r['type'] == 'train' for r in read(f'{out}.log'))):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGUSR1)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == preemption.EXIT_CODE, err[-2000:]
    assert 'stopped by SIGUSR1' in err and 'killed by signal' not in err


@pytest.mark.parametrize('flag, resumed_rates', [([], [1e-4, 1e-4]), (['--no-load-scheduler-state'], [1e-3, 1e-3])])
def test_resuming_with_new_milestones_follows_them_only_without_the_saved_scheduler_state(
        argv, tmp_path, caplog, flag, resumed_rates):
    out = tmp_path / 'm.pkl'
    schedule = ['--lr', '1e-3', '--lr-warm-up-epochs', '0', '--lr-schedule', 'milestones', '--lr-values', '1e-4']
    train.run(train.cli(argv + schedule + ['--lr-milestones', '1', '--epochs', '1', '--output', str(out)]))
    caplog.set_level('WARNING')
    train.run(train.cli(argv + schedule + ['--lr-milestones', '5', '--epochs', '2', '--resume', f'{out}.epoch001']
                        + flag))
    rates = [(r['epoch'], r['lr']) for r in read(f'{out}.log') if r['type'] == 'train']
    assert rates == [(1, 1e-3), (1, 1e-3), *((2, rate) for rate in resumed_rates)]
    warned = 'continuing the saved learning-rate schedule; this run\'s flags would change milestones (1,) -> (5,)'
    assert (warned in caplog.text) == (not flag)
    assert checkpoint.load(f'{out}.epoch002')['training_state']['schedule']['milestones'] == ((5,) if flag else (1,))

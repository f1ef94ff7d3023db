"""``--ddp``: real processes on the CPU (gloo) train exactly like one process with the global batch."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint, factory as network_factory
from openfields.training.log import read

from distributed_runs import (TINY_DDP, TRAIN_FAILING_RANK, TRAIN_FLOAT64, environment, finish, relative_difference,
                              start_ranks, state_of, torchrun, torchrun_command)
from train_float64 import float64


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('synthetic-cache')


def initial_state(argv):
    """The weights a run of ``argv`` starts from (seeded, then built like train.run builds them)."""
    args = train.cli(argv)
    train.seed_everything(args.seed)
    datamodule = datasets_factory.datamodule_from_args(args, base_stride=16)
    network = network_factory.factory(args, datamodule.head_metas)
    return {k: v.detach().double() for k, v in network.state_dict().items() if v.dtype.is_floating_point}


def test_two_processes_of_batch_2_train_like_one_process_of_batch_4(tmp_path, cache_dir):
    # float64 (see tests/train_float64.py): float32 rounding alone makes two single-process runs that
    # differ only in their thread count drift apart by 1e-4 within four steps of this tiny setup
    # two steps, one per epoch (the second epoch draws a new order), one checkpoint
    common = TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--epochs', '2', '--train-batches', '1',
                         '--val-interval', '2', '--lr', '1e-4']
    initial = initial_state(common)  # also renders the images
    ddp, single = tmp_path / 'ddp.pkl', tmp_path / 'single.pkl'
    distributed_run = subprocess.Popen(torchrun_command(common + ['--batch-size', '2', '--output', str(ddp)],
                                                        script=TRAIN_FLOAT64),
                                       env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with float64():  # meanwhile, the single process
            train.run(train.cli(common + ['--batch-size', '4', '--output', str(single)]))
        _, err = distributed_run.communicate(timeout=600)
    finally:
        if distributed_run.poll() is None:
            distributed_run.kill()
    assert distributed_run.returncode == 0, err[-3000:]

    records = read(f'{ddp}.log')
    assert (records[0]['world_size'], records[0]['global_batch_size']) == (2, 4)
    assert [(r['epoch'], r['batch']) for r in records if r['type'] == 'train'] == [(1, 0), (2, 0)]
    assert relative_difference(state_of(ddp), state_of(single)) <= 1e-5
    # ... which is not trivial: the two steps moved the weights a thousand times further
    assert relative_difference(state_of(single), initial) > 1e-2


def test_ranks_started_with_different_arguments_stop_at_start_up_naming_them(cache_dir):
    common = TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--batch-size', '2']
    results = finish(start_ranks([common + ['--lr', '0.1'], common + ['--lr', '0.2']]), timeout=300)
    for code, err in results:
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith('openfields.train: error (rank ') and \
            'different arguments (--lr: rank 0 0.1, rank 1 0.2)' in last


def test_a_failing_rank_ends_the_job_with_its_error_instead_of_hanging(tmp_path, cache_dir):
    # started by hand: no launcher kills the others, the collectives themselves must fail
    argv = TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--batch-size', '2', '--epochs', '1',
                       '--output', str(tmp_path / 'm.pkl')]
    processes = start_ranks([argv, argv], entry=[TRAIN_FAILING_RANK], extra_env={'FAIL_RANK': '1'})
    (code0, err0), (code1, err1) = finish(processes, timeout=300)
    assert code1 != 0 and 'RuntimeError: injected failure on rank 1' in err1
    # rank 0 learns it from its collective: gloo reports the lost peer, pointing at the other rank's log
    assert code0 != 0 and 'injected failure' not in err0
    assert re.search(r'Connection (closed|reset) by peer', err0.strip().splitlines()[-1])


def wait_for_train_record(log, process, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(log) and any(r['type'] == 'train' for r in read(log)):
            return
        time.sleep(0.2)
    raise AssertionError(f'no train record in {log} (exit code {process.poll()})')


@pytest.mark.slow
def test_sigterm_to_a_two_rank_run_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, cache_dir):
    # 16 images, batch 2 per rank: 4 steps per epoch; EMA on; augmentation off, fixed seed
    argv = TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--synthetic-train-images', '16',
                       '--batch-size', '2', '--epochs', '2', '--ema', '0.1', '--lr', '1e-4']
    reference = tmp_path / 'reference.pkl'
    legacy = [sys.executable, '-m', 'torch.distributed.launch', '--standalone', '--nproc_per_node=2',
              '-m', 'openfields.train', '--ddp', *argv, '--output', str(reference)]  # passes --local-rank
    result = subprocess.run(legacy, capture_output=True, text=True, env=environment(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / 'run.pkl'
    command = torchrun_command(argv + ['--output', str(out), '--resume', 'auto'])
    run = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_train_record(f'{out}.log', run)
        run.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    stopped = [r for r in read(f'{out}.log') if r['type'] == 'stopped']
    assert len(stopped) == 1, err[-3000:]
    assert '.batch' in stopped[0]['checkpoint'] and os.path.exists(stopped[0]['checkpoint'])
    assert not out.exists()

    result = torchrun(argv + ['--output', str(out), '--resume', 'auto'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert relative_difference(state_of(out), state_of(reference)) <= 1e-6
    records = read(f'{out}.log')
    steps = [(r['epoch'], r['batch']) for r in records if r['type'] == 'train']
    assert steps == [(e, b) for e in (1, 2) for b in range(4)]  # each step once, across the two runs
    assert [r['resumed_from'] for r in records if r['type'] == 'process'] == [None, stopped[0]['checkpoint']]


LAUNCHER_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
                      'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_JOB_NODELIST', 'SLURM_JOB_ID')


def test_ddp_without_a_launcher_is_one_line_naming_the_missing_variables(monkeypatch, capsys):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(['--ddp', '--epochs', '1'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('openfields.train: error: --ddp: no launcher environment')
    assert 'RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT' in err[0] and 'SLURM_PROCID' in err[0]


def test_ddp_with_a_world_of_one_trains_as_a_single_process(monkeypatch, tmp_path, cache_dir, caplog):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('WORLD_SIZE', '1')
    out = tmp_path / 'one.pkl'
    train.main(TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--batch-size', '2', '--epochs', '1',
                           '--train-batches', '1', '--val-batches', '1', '--output', str(out), '--ddp'])
    assert 'training as a single process' in caplog.text
    assert read(f'{out}.log')[0]['world_size'] == 1 and out.is_file()


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_under_ddp_rank_0_evaluates_and_the_others_get_its_scores(tmp_path, cache_dir):
    out = tmp_path / 'ddp.pkl'
    result = torchrun(TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--batch-size', '2', '--epochs', '2',
                                  '--train-batches', '1', '--val-batches', '1', '--eval-interval', '1',
                                  '--coco-eval-long-edge', '0', '--output', str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    tests = [r for r in read(f'{out}.log') if r['type'] == 'test']
    assert [(r['epoch'], r['dataset']) for r in tests] == [(1, 'synthetic'), (2, 'synthetic')]
    values = [r['metrics']['test.AP'] for r in tests]
    best = checkpoint.load(tmp_path / 'ddp.best.pkl')
    assert best['meta']['best']['epoch'] == values.index(max(values)) + 1
    assert best['training_state']['world_size'] == 2

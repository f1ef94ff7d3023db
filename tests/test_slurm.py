"""A real Slurm cluster of one node: ``sbatch slurm/train.sh`` trains on 2 tasks, ``sbatch slurm/eval.sh``
evaluates the checkpoint. ``make test-slurm``; installs Debian's Slurm and munge when missing (as root)."""

import json
import os
import pathlib
import time

import pytest

from openfields.training.log import read

import slurm_cluster

pytestmark = pytest.mark.slurm

REPOSITORY = pathlib.Path(__file__).parent.parent
SYNTHETIC = ['--dataset=synthetic', '--synthetic-val-images=4', '--synthetic-image-size=48']
CPU_JOB = ['--nodes=1', '--gres=none', '--mem=1G', '--time=20']


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    if slurm_cluster.missing_tools():
        reason = slurm_cluster.install_packages()
        if reason is not None:
            pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip('the one-node test cluster runs its daemons as root')
    before = slurm_cluster.running_daemons()
    with slurm_cluster.one_node_cluster(tmp_path_factory.mktemp('slurm'), cpus=os.cpu_count() or 2) as cluster:
        yield cluster
    assert slurm_cluster.running_daemons() <= before  # nothing of ours is left running


def test_sbatch_trains_on_two_tasks_then_evaluates_the_checkpoint(cluster, tmp_path):
    out = tmp_path / 'train.pkl'
    train_job = cluster.sbatch(*CPU_JOB, '--ntasks-per-node=2', '--cpus-per-task=1',
                               f'--output={tmp_path}/train-%j.out', 'slurm/train.sh',
                               *SYNTHETIC, '--synthetic-train-images=8', f'--synthetic-cache-dir={tmp_path}/cache',
                               '--synthetic-square-edge=33',
                               '--basenet=shufflenetv2k16', '--batch-size=2', '--epochs=1', '--loader-workers=0',
                               '--device=cpu', f'--output={out}', cwd=REPOSITORY)
    state = cluster.wait(train_job, timeout=900)
    job_output = '\n'.join((tmp_path / f'train-{train_job}.out').read_text().splitlines()[-30:])
    assert (state['JobState'], state['ExitCode']) == ('COMPLETED', '0:0'), job_output
    process = read(f'{out}.log')[0]
    assert (process['world_size'], process['global_batch_size'], process['launcher']) == (2, 4, 'slurm')
    assert out.is_file() and pathlib.Path(f'{out}.epoch001').is_file()

    eval_job = cluster.sbatch(*CPU_JOB, '--ntasks=1', '--cpus-per-task=1', f'--output={tmp_path}/eval-%j.out',
                              'slurm/eval.sh', f'--checkpoint={out}', *SYNTHETIC, '--synthetic-train-images=8',
                              f'--synthetic-cache-dir={tmp_path}/cache', '--coco-eval-long-edge=33',
                              '--loader-workers=0', '--device=cpu', f'--output={tmp_path}/eval', cwd=REPOSITORY)
    state = cluster.wait(eval_job, timeout=600)
    job_output = '\n'.join((tmp_path / f'eval-{eval_job}.out').read_text().splitlines()[-30:])
    assert (state['JobState'], state['ExitCode']) == ('COMPLETED', '0:0'), job_output
    stats = json.loads((tmp_path / 'eval.stats.json').read_text())
    assert stats['checkpoint'] == str(out)


def test_a_signalled_job_checkpoints_requeues_itself_and_resumes_to_the_end(cluster, tmp_path):
    out = tmp_path / 'run.pkl'
    job = cluster.sbatch(*CPU_JOB, '--ntasks-per-node=2', '--cpus-per-task=1', '--open-mode=append',
                         f'--output={tmp_path}/train-%j.out', 'slurm/train.sh', '--requeue',
                         *SYNTHETIC, '--synthetic-train-images=16', f'--synthetic-cache-dir={tmp_path}/cache',
                         '--synthetic-square-edge=33', '--basenet=shufflenetv2k16', '--batch-size=2',
                         '--epochs=2', '--loader-workers=0', '--device=cpu', '--display-interval=1',
                         f'--output={out}', '--resume=auto', cwd=REPOSITORY)
    deadline = time.monotonic() + 600
    while not (os.path.exists(f'{out}.log') and any(r['type'] == 'train' for r in read(f'{out}.log'))):
        assert time.monotonic() < deadline and cluster.job_state(job)['JobState'] in ('PENDING', 'RUNNING')
        time.sleep(0.5)
    cluster.command('scancel', '--signal=USR1', str(job))  # what --signal=USR1@T sends before the time limit
    deadline = time.monotonic() + 600
    while cluster.job_state(job)['Restarts'] == '0':  # train.sh requeues the job ...
        assert time.monotonic() < deadline and cluster.job_state(job)['JobState'] != 'FAILED'
        time.sleep(0.5)
    # ... which Slurm holds for two minutes before it may start again: let it start now, but not within
    # a second or so of the requeue: slurmd then still holds the killed run's credential as revoked and
    # refuses the relaunch ("Job credential revoked" in slurmctld.log), which fails the job
    time.sleep(2.0)
    cluster.command('scontrol', 'update', f'JobId={job}', 'StartTime=now', check=False)

    state = cluster.wait(job, timeout=900)
    job_output = '\n'.join((tmp_path / f'train-{job}.out').read_text().splitlines()[-40:])
    assert (state['JobState'], state['ExitCode'], state['Restarts']) == ('COMPLETED', '0:0', '1'), job_output
    records = read(f'{out}.log')
    stopped = [r for r in records if r['type'] == 'stopped']
    assert len(stopped) == 1 and stopped[0]['signal'] == 'SIGUSR1'
    assert [r['resumed_from'] for r in records if r['type'] == 'process'] == [None, stopped[0]['checkpoint']]
    assert [(r['epoch'], r['batch']) for r in records if r['type'] == 'train'] == \
        [(e, b) for e in (1, 2) for b in range(4)]  # every step once, over the two runs of the job
    assert out.is_file()

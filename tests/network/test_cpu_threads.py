"""CPU threads: as many as the CPUs this process may use, idle ones sleep, and the choice is logged."""

import os
import subprocess
import sys

from openfields.network import cpu_threads


def test_threads_follow_the_cpus_this_process_may_use_not_the_machines_cores():
    mine = len(os.sched_getaffinity(0))
    assert cpu_threads.choose({}).threads == mine
    assert cpu_threads.choose({'SLURM_CPUS_PER_TASK': '1'}) == cpu_threads.ThreadChoice(
        threads=1, usable_cpus=1, source='one per usable CPU', wait_policy='libgomp default (spin, then sleep)')


def test_omp_num_threads_overrides_and_torchrun_processes_share_the_cpus():
    assert cpu_threads.choose({'OMP_NUM_THREADS': '3'}).threads == 3
    shared = cpu_threads.choose({'LOCAL_WORLD_SIZE': str(2 * len(os.sched_getaffinity(0)))})
    assert shared.threads == 1 and 'shared by' in shared.source


def test_importing_openfields_makes_idle_threads_sleep_unless_the_environment_says_otherwise():
    code = 'import openfields, os; print(os.environ["OMP_WAIT_POLICY"])'
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    assert subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == 'PASSIVE'
    assert subprocess.run([sys.executable, '-c', code], env={**env, 'OMP_WAIT_POLICY': 'ACTIVE'},
                          capture_output=True, text=True, check=True).stdout.strip() == 'ACTIVE'


def test_configure_sets_torch_silently_and_the_choice_is_logged_in_one_line_later(caplog):
    import torch
    before = torch.get_num_threads()
    caplog.set_level('INFO')
    environ = {'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE'}
    try:
        choice = cpu_threads.configure(environ)
        assert torch.get_num_threads() == 1 == choice.threads and caplog.text == ''
        cpu_threads.log_choice(environ)
        assert len(caplog.records) == 1
        assert 'threads: 1 CPU thread (OMP_NUM_THREADS;' in caplog.text and 'wait policy PASSIVE' in caplog.text
    finally:
        torch.set_num_threads(before)

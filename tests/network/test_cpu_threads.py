"""CPU threads: as many as the CPUs this process may use, idle ones sleep, and the choice is logged."""

import os
import subprocess
import sys

from openfields.network import cpu_threads


def test_threads_follow_the_cpus_this_process_may_use_not_the_machines_cores():
    mine = len(os.sched_getaffinity(0))
    assert cpu_threads.choose({}).threads == mine
    assert cpu_threads.choose({'SLURM_CPUS_PER_TASK': '1'}).threads == 1


def test_omp_num_threads_overrides_and_torchrun_processes_share_the_cpus():
    assert cpu_threads.choose({'OMP_NUM_THREADS': '3'}).threads == 3
    shared = cpu_threads.choose({'LOCAL_WORLD_SIZE': str(2 * len(os.sched_getaffinity(0)))})
    assert shared.threads == 1 and 'shared by' in shared.source


def test_idle_threads_sleep_on_a_busy_machine_and_spin_on_a_quiet_one():
    assert cpu_threads.wait_policy_for(other_running=1, machine_cpus=2) == 'PASSIVE'
    assert cpu_threads.wait_policy_for(other_running=40, machine_cpus=64) == 'PASSIVE'
    assert cpu_threads.wait_policy_for(other_running=0, machine_cpus=2) is None
    assert cpu_threads.wait_policy_for(other_running=20, machine_cpus=64) is None


def test_the_policy_is_chosen_at_start_unless_the_environment_sets_it():
    environ = {}
    cpu_threads.choose_wait_policy(environ, other_running=lambda: 7)
    assert environ['OMP_WAIT_POLICY'] == 'PASSIVE'
    assert 'PASSIVE (7 other runnable threads on' in cpu_threads.choose(environ).wait_policy
    environ = {'OMP_WAIT_POLICY': 'ACTIVE'}
    cpu_threads.choose_wait_policy(environ, other_running=lambda: 7)
    assert environ == {'OMP_WAIT_POLICY': 'ACTIVE'}
    environ = {}
    cpu_threads.choose_wait_policy(environ, other_running=lambda: 0)
    assert environ == {} and 'quiet at start-up' in cpu_threads.choose(environ).wait_policy


def test_a_busy_neighbour_is_seen_at_once():
    import multiprocessing
    quiet = cpu_threads.other_running_threads()
    neighbours = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for neighbour in neighbours:
        neighbour.start()
    try:
        busy = cpu_threads.other_running_threads()
    finally:
        for neighbour in neighbours:
            neighbour.terminate()
    assert busy >= (os.cpu_count() or 1) > 0 and busy > quiet


def _spin():
    while True:
        pass


def test_openfields_is_imported_before_torch_so_the_policy_can_take_effect():
    code = 'import sys, openfields; print("torch" in sys.modules)'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True).stdout.strip() == 'False'


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

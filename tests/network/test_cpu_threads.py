"""CPU threads: as many as the CPUs this process may use, fewer while other processes keep CPUs busy, idle ones
sleep on a busy machine, and the choice is logged."""

import os
import subprocess
import sys

import pytest

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
    import time
    quiet = cpu_threads.other_running_threads()
    neighbours = [_stranger() for _ in range(os.cpu_count() or 1)]  # not this process's children: others
    try:
        time.sleep(0.2)
        busy = cpu_threads.other_running_threads()
    finally:
        for pid in neighbours:
            os.kill(pid, 15)
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


def _follower(readings, most=2, machine_cpus=2, **kwargs):
    values = iter(readings)
    return cpu_threads.LoadFollower(most=most, machine_cpus=machine_cpus, read_others=lambda: next(values),
                                    **kwargs)


def test_the_count_follows_the_median_of_the_last_readings_between_one_and_the_start_up_count():
    follower = _follower([0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], window=4)
    decided = [follower.sample() for _ in range(11)]
    # one neighbour: 1 thread once it is runnable in most of the last 4 readings (the first decision needs 3);
    # gone: 2 again once half of them see it gone
    assert decided == [2, 2, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    many = _follower([5, 5, 5], most=8, machine_cpus=8, window=3)
    assert [many.sample() for _ in range(3)] == [8, 3, 3]
    crowded = _follower([40] * 5, most=8, machine_cpus=8)
    assert [crowded.sample() for _ in range(5)] == [8, 8, 8, 8, 1]  # never fewer than one
    capped = _follower([0] * 5, most=3, machine_cpus=16)
    assert [capped.sample() for _ in range(5)] == [3] * 5  # never more than chosen at start-up (Slurm's CPUs...)


def test_a_change_is_said_in_one_line_naming_the_busy_cpus_at_most_every_say_every_s(caplog):
    caplog.set_level('DEBUG', logger=cpu_threads.LOG.name)
    follower = _follower([1, 0, 1], window=1, say_every_s=3600)  # window 1: every reading decides
    follower.sample()
    follower.sample()
    follower.sample()
    info = [r.getMessage() for r in caplog.records if r.levelname == 'INFO']
    assert info == ['threads: 1 now, not 2: other processes keep 1 of the 2 CPUs busy (a busy machine: this run '
                    'gets its share and runs slower until they end)']
    assert [r.getMessage() for r in caplog.records if r.levelname == 'DEBUG'] == [
        'threads: 2 again (the machine is quiet)', info[0]]


def test_apply_sets_the_count_of_the_calling_thread_only():
    import threading
    import torch
    before = torch.get_num_threads()
    follower = _follower([1], most=2, machine_cpus=2, window=1)
    follower.sample()
    seen = {}

    def worker():
        torch.set_num_threads(2)
        seen['before'] = torch.get_num_threads()
        seen['applied'] = follower.apply()
        seen['after'] = torch.get_num_threads()
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert seen == {'before': 2, 'applied': 1, 'after': 1}
    finally:
        torch.set_num_threads(before)


def test_the_count_is_fixed_where_following_would_be_wrong_or_blind():
    machine = os.cpu_count()
    if len(os.sched_getaffinity(0)) < machine:
        pytest.skip(f'this process may use {len(os.sched_getaffinity(0))} of {machine} CPUs')
    assert cpu_threads.choose({}).fixed_because is None
    assert 'follow' not in cpu_threads.choose({}).describe()
    assert 'fewer while other processes keep CPUs busy' in cpu_threads.choose({}).describe()
    assert cpu_threads.choose({'OMP_NUM_THREADS': '1'}).fixed_because == 'OMP_NUM_THREADS is set'
    assert cpu_threads.choose({'OPENFIELDS_FOLLOW_LOAD': '0'}).fixed_because == 'OPENFIELDS_FOLLOW_LOAD=0'
    assert 'torchrun' in cpu_threads.choose({'LOCAL_WORLD_SIZE': '2'}).fixed_because
    if machine > 1:
        assert 'a set of 1 of the machine' in cpu_threads.choose({'SLURM_CPUS_PER_TASK': '1'}).fixed_because


def test_follow_load_does_nothing_in_a_process_no_command_configured():
    code = ('import torch; from openfields.network import cpu_threads; torch.set_num_threads(1); '
            'print(cpu_threads.follow_load(), torch.get_num_threads())')
    got = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert got == ['None', '1']


def test_own_threads_and_children_are_not_others_but_an_unrelated_spinning_process_is():
    """A spinning child (as a DataLoader worker) is this run's own load; a process of someone else is not.
    Readings are noisy (a passing system thread), so each side takes the median of several."""
    import multiprocessing
    import statistics
    import time
    reader = cpu_threads.OtherRunnableThreads(children_every_s=0.0)

    def others():
        seen = []
        for _ in range(9):
            seen.append(reader())
            time.sleep(0.02)
        return statistics.median(seen)
    quiet = others()
    child = multiprocessing.Process(target=_spin, daemon=True)
    child.start()
    try:
        time.sleep(0.3)
        with_child = others()
    finally:
        child.terminate()
    stranger = _stranger()
    try:
        time.sleep(0.3)
        with_stranger = others()
    finally:
        os.kill(stranger, 15)
    assert with_child <= quiet and with_stranger >= quiet + 1, (quiet, with_child, with_stranger)


def test_deterministic_training_keeps_the_start_up_count(caplog):
    import torch
    from openfields.training import accelerate
    before = torch.get_num_threads()
    caplog.set_level('INFO', logger=cpu_threads.LOG.name)
    try:
        choice = cpu_threads.configure({})
        if choice.fixed_because is not None:
            pytest.skip(f'the count is fixed here: {choice.fixed_because}')
        assert cpu_threads.follow_load() == choice.threads  # a command follows the load...
        with accelerate.backend_switches(accelerate.AccelerateSettings(deterministic=True)):
            assert cpu_threads.follow_load() is None  # ... until --deterministic fixes the count
        assert f'threads: {choice.threads}, fixed from now on (--deterministic)' in caplog.text
    finally:
        cpu_threads.stop_following('test over')
        torch.set_num_threads(before)


TRAIN = ['--dataset', 'synthetic', '--synthetic-train-images', '8', '--synthetic-val-images', '2',
         '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
         '--batch-size', '2', '--epochs', '1000', '--loader-workers', '1', '--display-interval', '1',
         '--seed', '3', '--lr', '1e-3', '--val-interval', '1000']


@pytest.mark.slow  # 20 s of training next to spinning processes: make test-slow (CI runs it)
def test_a_training_run_takes_fewer_threads_while_other_processes_keep_the_cpus_busy(tmp_path):
    """The real command, a spinning neighbour per CPU started after the run began and stopped later: the
    run's log records torch's threads per batch (all CPUs, then 1, then all again), and one line said why."""
    import time
    from openfields.training.log import read
    cpus = os.cpu_count()
    if len(os.sched_getaffinity(0)) < cpus or cpus < 2:
        pytest.skip(f'needs every CPU of a machine of 2 or more (may use {len(os.sched_getaffinity(0))} of {cpus})')
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', cpu_threads.FOLLOW_LOAD)}
    out, log = tmp_path / 'model.pkl', tmp_path / 'model.pkl.log'
    stderr = (tmp_path / 'stderr').open('w')
    run = subprocess.Popen([sys.executable, '-m', 'openfields.train', *TRAIN, '--synthetic-cache-dir',
                            str(tmp_path / 'cache'), '--output', str(out)], env=env, stderr=stderr)

    def threads_seen(after_batches=0, timeout_s=120.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and run.poll() is None:
            records = [r for r in read(f'{out}.log') if r['type'] == 'train'] if log.exists() else []
            if len(records) > after_batches:
                return records
            time.sleep(0.2)
        raise AssertionError(f'no batch after {after_batches} in {timeout_s} s: {(tmp_path / "stderr").read_text()}')
    neighbours = []
    try:
        quiet = threads_seen(after_batches=8)  # a few seconds with a loader worker: the run's own
        neighbours = [_stranger() for _ in range(cpus)]
        time.sleep(4)
        busy = threads_seen(after_batches=len(threads_seen()) + 3)
        for pid in neighbours:
            os.kill(pid, 15)
        neighbours = []
        time.sleep(4)
        again = threads_seen(after_batches=len(threads_seen()) + 3)
    finally:
        for pid in neighbours:
            os.kill(pid, 15)
        run.terminate()
        run.wait()
    assert {r['threads'] for r in quiet} == {cpus}
    assert busy[-1]['threads'] == 1 and again[-1]['threads'] == cpus
    said = (tmp_path / 'stderr').read_text()
    assert f'threads: 1 now, not {cpus}: other processes keep' in said


def _stranger() -> int:
    """A process that keeps a CPU busy and is not this process's child (its parent shell exits): someone
    else's load. Returns its pid."""
    return int(subprocess.run(['sh', '-c', f'{sys.executable} -c "while True: pass" >/dev/null 2>&1 & echo $!'],
                              capture_output=True, text=True, check=True).stdout)

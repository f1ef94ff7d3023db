"""Every command is set up by one function: tuning before torch loads, logging, threads, exit statuses."""

import argparse
import contextlib
import multiprocessing
import os
import subprocess
import sys

import pytest

from openfields import cli_setup

# records OMP_WAIT_POLICY at the moment torch is first imported, then ends the process (torch is not loaded)
WHEN_TORCH_LOADS = '''
import os, sys
class SeeTorchLoad:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch':
            print('torch loads with OMP_WAIT_POLICY', os.environ.get('OMP_WAIT_POLICY'), flush=True)
            os._exit(0)
sys.meta_path.insert(0, SeeTorchLoad())
'''


def _spin():
    while True:
        pass


@contextlib.contextmanager
def busy_machine():
    """One spinning process per CPU: a machine where openfields' commands choose sleeping OpenMP threads."""
    neighbours = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for neighbour in neighbours:
        neighbour.start()
    try:
        yield
    finally:
        for neighbour in neighbours:
            neighbour.terminate()
            neighbour.join()


def python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'OPENFIELDS_SET_OMP_WAIT_POLICY')}
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_openfields_leaves_the_wait_policy_alone_even_on_a_busy_machine():
    with busy_machine():
        got = python('import os, openfields, openfields.network.cpu_threads\n'
                     'print(os.environ.get("OMP_WAIT_POLICY"), "torch" in __import__("sys").modules)')
    assert got == 'None False'


@pytest.mark.parametrize('module', ['openfields.train', 'openfields.eval', 'openfields.predict', 'openfields.video',
                                    'openfields.export_onnx'])
def test_a_command_on_a_busy_machine_sets_the_policy_before_torch_loads(module):
    # runpy with alter_sys is what `python -m module` runs
    code = WHEN_TORCH_LOADS + f'import runpy; runpy.run_module({module!r}, run_name="__main__", alter_sys=True)'
    with busy_machine():
        got = python(code)
    assert got == 'torch loads with OMP_WAIT_POLICY PASSIVE'


class Refused(Exception):
    pass


def command(work, argv, **kwargs):
    parser = argparse.ArgumentParser()
    parser.add_argument('-q', '--quiet', action='store_true')
    parser.add_argument('--n', type=int, default=1)
    return cli_setup.run_cli('openfields.example', parser, work, (ValueError,), argv=argv, threads=False, **kwargs)


def exit_status(capsys, work, argv=(), **kwargs) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_info:
        command(work, list(argv), **kwargs)
    return exit_info.value.code, capsys.readouterr().err.splitlines()


def test_success_returns_0_and_the_commands_status_exits():
    assert command(lambda args: None, []) == 0
    with pytest.raises(SystemExit) as exit_info:
        command(lambda args: args.n, ['--n', '3'])
    assert exit_info.value.code == 3
    assert command(lambda args: args.n, ['--n', '3'], exit_on_failure=False) == 3
    with pytest.raises(TypeError, match='run returned list, not an exit status'):
        command(lambda args: [args.n], [])  # results are not a status (sys.exit would print them, status 1)


def test_a_user_error_is_one_line_naming_the_command_and_exit_2(capsys):
    def work(args):
        raise ValueError(f'--n {args.n}: must be even')
    assert exit_status(capsys, work, ['--n', '3']) == (2, ['openfields.example: error: --n 3: must be even'])


def test_ctrl_c_is_exit_130_with_what_it_leaves_behind(capsys):
    def work(args):
        raise KeyboardInterrupt
    assert exit_status(capsys, work) == (130, ['openfields.example: interrupted'])
    assert exit_status(capsys, work, interrupted='no output written') == \
        (130, ['openfields.example: interrupted; no output written'])


def test_other_failures_have_their_status_and_word_and_a_distributed_run_names_the_rank(capsys):
    def work(args):
        raise Refused('stopped by SIGTERM')
    stopped = cli_setup.Failure((Refused,), 99, 'stopped', main_rank_only=True)
    assert exit_status(capsys, work, failures=[stopped], rank=lambda: (0, 2)) == \
        (99, ['openfields.example: stopped (rank 0/2): stopped by SIGTERM'])
    assert exit_status(capsys, work, failures=[stopped], rank=lambda: (1, 2)) == (99, [])  # rank 0 says it
    with pytest.raises(Refused):  # not an expected failure: the traceback shows
        command(work, [])


def test_a_bad_flag_is_argparse_exit_2_before_any_work(capsys):
    done = []
    assert exit_status(capsys, done.append, ['--n', 'x'])[0] == 2 and done == []

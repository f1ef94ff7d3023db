"""slurm/train.sh and slurm/eval.sh with stand-ins for srun and scontrol: arguments, rendezvous, requeue."""

import os
import pathlib
import shlex
import subprocess

import pytest

from openfields.training import distributed, preemption

SLURM = pathlib.Path(__file__).parent.parent / 'slurm'
AWKWARD = ['--lr=0.1', 'two words', "it's", '$HOME', '*.pkl', '--output=a;b', '']


@pytest.fixture
def fake_slurm(tmp_path):
    """srun records its arguments (NUL-separated) and MASTER_*; scontrol answers hostnames and requeue."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(
        '#!/usr/bin/env bash\n'
        'printf "%s\\0" "$@" > "$FAKE_DIR/srun.args"\n'
        'echo "$MASTER_ADDR:$MASTER_PORT" > "$FAKE_DIR/srun.master"\n'
        'exit "${FAKE_SRUN_EXIT:-0}"\n')
    (bin_dir / 'scontrol').write_text(
        '#!/usr/bin/env bash\n'
        'if [[ "$1 $2" == "show hostnames" ]]; then printf "gpu07\\ngpu08\\n"; exit 0; fi\n'
        'echo "$@" >> "$FAKE_DIR/scontrol.calls"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'MASTER_'))}
    env.update(PATH=f'{bin_dir}:{env["PATH"]}', FAKE_DIR=str(tmp_path), SLURM_JOB_ID='123456',
               SLURM_JOB_NODELIST='gpu[07-08]', SLURM_NTASKS='8', SLURM_SUBMIT_DIR=str(tmp_path),
               OPENFIELDS_VENV=str(tmp_path / 'no-venv'))
    return tmp_path, env


def run_script(name, argv, env, **extra):
    return subprocess.run(['bash', str(SLURM / name), *argv], env={**env, **extra}, capture_output=True,
                          text=True, timeout=60)


def srun_arguments(folder) -> list[str]:
    return (folder / 'srun.args').read_text().split('\0')[:-1]


def test_train_sh_passes_every_argument_unchanged_to_one_srun_step(fake_slurm):
    folder, env = fake_slurm
    result = run_script('train.sh', AWKWARD, env)
    assert result.returncode == 0, result.stderr
    assert srun_arguments(folder) == ['--kill-on-bad-exit=1', 'python3', '-u', '-m', 'openfields.train', '--ddp',
                                      *AWKWARD]
    # the logged command line is quoted so that a shell reads it back as the same arguments
    logged = next(line for line in result.stdout.splitlines() if line.startswith('train.sh: srun '))
    assert shlex.split(logged[len('train.sh: srun '):]) == ['python3', '-u', '-m', 'openfields.train', '--ddp',
                                                           *AWKWARD]


def test_train_sh_sets_the_rendezvous_of_openfields_distributed(fake_slurm):
    folder, env = fake_slurm
    assert run_script('train.sh', [], env).returncode == 0
    assert (folder / 'srun.master').read_text().strip() == \
        f'gpu07:{distributed.default_master_port(123456)}'
    assert run_script('train.sh', [], env, MASTER_ADDR='head', MASTER_PORT='4242').returncode == 0
    assert (folder / 'srun.master').read_text().strip() == 'head:4242'


def test_train_sh_requeues_a_stopped_run_only_with_requeue(fake_slurm):
    folder, env = fake_slurm
    result = run_script('train.sh', ['--lr=0.1'], env, FAKE_SRUN_EXIT=str(preemption.EXIT_CODE))
    assert result.returncode == preemption.EXIT_CODE and not (folder / 'scontrol.calls').exists()

    result = run_script('train.sh', ['--requeue', '--lr=0.1'], env, FAKE_SRUN_EXIT=str(preemption.EXIT_CODE))
    assert result.returncode == preemption.EXIT_CODE
    assert (folder / 'scontrol.calls').read_text() == 'requeue 123456\n'
    assert srun_arguments(folder)[-2:] == ['--ddp', '--lr=0.1']  # --requeue is the script's own

    (folder / 'scontrol.calls').unlink()
    result = run_script('train.sh', ['--requeue'], env, FAKE_SRUN_EXIT='1')  # a failure is not requeued
    assert result.returncode == 1 and not (folder / 'scontrol.calls').exists()


def test_scripts_run_inside_a_container_prefix(fake_slurm):
    folder, env = fake_slurm
    assert run_script('eval.sh', ['--checkpoint=x y.pkl'], env,
                      OPENFIELDS_CONTAINER='apptainer exec --nv of.sif').returncode == 0
    assert srun_arguments(folder) == ['apptainer', 'exec', '--nv', 'of.sif', 'python3', '-u', '-m', 'openfields.eval',
                                      '--checkpoint=x y.pkl']


def test_eval_sh_passes_every_argument_unchanged(fake_slurm):
    folder, env = fake_slurm
    result = run_script('eval.sh', AWKWARD, env, FAKE_SRUN_EXIT='3')
    assert result.returncode == 3
    assert srun_arguments(folder) == ['python3', '-u', '-m', 'openfields.eval', *AWKWARD]


@pytest.mark.parametrize('name', ['train.sh', 'eval.sh'])
def test_sbatch_headers_cover_the_documented_resources(name):
    headers = [line.split()[1].split('=')[0] for line in (SLURM / name).read_text().splitlines()
               if line.startswith('#SBATCH')]
    assert {'--nodes', '--gres', '--cpus-per-task', '--mem', '--time'} <= set(headers)
    assert ('--ntasks-per-node' if name == 'train.sh' else '--ntasks') in headers

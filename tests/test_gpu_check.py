"""``python -m tools.gpu_check`` (``make gpu-check``): on a machine without a GPU it says so, skips every
step and exits 0; its plan runs the DDP check with NCCL on two GPUs and gloo on one."""

import json
import os
import pathlib
import subprocess
import sys
import time

from tools import gpu_check

REPO = pathlib.Path(__file__).parent.parent


def test_without_a_gpu_every_step_is_skipped_with_the_reason(tmp_path):
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES='')  # what a machine without a GPU sees
    result = subprocess.run([sys.executable, '-m', 'tools.gpu_check', '--output-dir', str(tmp_path)], cwd=REPO,
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'gpu-check: no GPU: torch.cuda.is_available() is False' in result.stderr
    report = json.loads((tmp_path / 'gpu-check.json').read_text())
    assert report['hardware']['gpu'] is None and report['torch'] and report['date']
    assert [(s['name'], s['status']) for s in report['steps']] == [
        ('several-gpus-without-ddp-refused', 'skipped'), ('cuda-tests', 'skipped'),
        ('ddp-2-processes-gloo', 'skipped'), ('bench-train', 'skipped'),
        ('bench-decode', 'skipped')]


def test_two_gpus_train_with_nccl_one_gpu_with_gloo(tmp_path):
    def ddp_command(n_gpus):
        return next(command for name, command in gpu_check.steps(tmp_path, n_gpus) if name.startswith('ddp'))
    assert ddp_command(2)[ddp_command(2).index('--ddp-backend') + 1] == 'nccl'
    assert ddp_command(1)[ddp_command(1).index('--ddp-backend') + 1] == 'gloo'
    assert '--nproc_per_node' in ddp_command(1) and '2' in ddp_command(1)


def test_a_step_past_the_deadline_is_skipped():
    assert gpu_check.run_step('late', [sys.executable, '-c', 'pass'], deadline=0.0)['status'] == 'skipped'


def test_two_gpus_check_that_one_process_without_ddp_is_refused(tmp_path):
    def refusal(n_gpus):
        return dict(gpu_check.steps(tmp_path, n_gpus))['several-gpus-without-ddp-refused']
    assert refusal(1) is None and refusal(0) is None
    command = refusal(2)
    assert command[1:3] == ['-m', 'openfields.train'] and '--ddp' not in command
    assert command[command.index('--device') + 1] == 'auto'
    skipped = gpu_check.run_step('several-gpus-without-ddp-refused', None, deadline=time.monotonic() + 60)
    assert (skipped['status'], skipped['reason']) == ('skipped', 'fewer than 2 GPUs')


def test_a_refusal_step_passes_only_with_its_status_and_text():
    name = 'several-gpus-without-ddp-refused'
    says = 'import sys; print("openfields.train: error: ... without --ddp ...", file=sys.stderr); sys.exit(2)'
    assert gpu_check.run_step(name, [sys.executable, '-c', says], deadline=time.monotonic() + 60)['status'] == 'passed'
    succeeded = gpu_check.run_step(name, [sys.executable, '-c', 'pass'], deadline=time.monotonic() + 60)
    assert succeeded['status'] == 'failed'  # training instead of refusing

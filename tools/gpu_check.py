"""The checks that need a GPU, in one go: ``python -m tools.gpu_check`` (``make gpu-check``).

Steps, each under what is left of one deadline (``--budget``, 8 minutes by default):

0. with two GPUs or more, OpenPifPaf's ``python -m openpifpaf.train ...`` without ``--ddp`` (its DataParallel
   split over the visible GPUs): openfields must refuse it naming ``--ddp``, exit 2 (skipped with fewer GPUs);
1. the CUDA tests (``pytest -m cuda``: AMP, channels_last and fp16 steps on CUDA, torch's SyncBatchNorm over
   NCCL, ours over gloo on one GPU);
2. a 2-process ``--ddp`` training run through ``torchrun`` on the synthetic set: NCCL where two GPUs exist,
   else gloo with both processes on one GPU; bf16 autocast, channels_last;
3. ``tools.benchmark`` on CUDA: train images/s of shufflenetv2k16 and resnet50 at batch 32, 385x385, in float32
   and with bf16 / fp16 autocast (channels_last), inference ms/image and peak GPU memory:
   ``<output-dir>/train-cuda.json``;
4. ``tools.benchmark_decode``: decoder ms/image and prediction end to end: ``<output-dir>/decode-cuda.json``.

``<output-dir>/gpu-check.json`` records the hardware, the date, torch's version and each step's outcome.
Without a GPU every step is skipped with that reason, and the script exits 0: it is safe to run anywhere.
"""

import argparse
import datetime
import logging
import os
import pathlib
import subprocess
import sys
import time

import torch

from openfields.outputs import write_json
from openfields.version import version

from .benchmark import cpu_name, gpu_hardware

LOG = logging.getLogger('gpu-check')

TRAIN_DDP = ['--dataset', 'synthetic', '--synthetic-train-images', '64', '--synthetic-val-images', '8',
             '--synthetic-image-size', '193', '--synthetic-square-edge', '193', '--basenet', 'shufflenetv2k16',
             '--batch-size', '8', '--epochs', '2', '--loader-workers', '2', '--display-interval', '2', '--seed', '1',
             '--amp', 'bf16', '--channels-last', '--device', 'cuda']
BENCH = ['--basenet', 'shufflenetv2k16', 'resnet50', '--batch-size', '32', '--square-edge', '385', '--repeats', '10',
         '--variants', 'plain', 'amp_bf16+channels_last', 'amp_fp16+channels_last', '--samples', '0']


# steps that must fail: (exit status, text on stderr)
REFUSALS = {'several-gpus-without-ddp-refused': (2, 'without --ddp')}


def steps(output_dir: pathlib.Path, n_gpus: int) -> list[tuple[str, list[str] | None]]:
    """(name, command) of every step, None for a step this machine cannot run; the DDP run uses NCCL with
    two GPUs, gloo on one."""
    python = sys.executable
    backend = 'nccl' if n_gpus >= 2 else 'gloo'
    one_process = [*TRAIN_DDP[:TRAIN_DDP.index('--device')], '--device', 'auto',
                   '--synthetic-cache-dir', str(output_dir / 'cache'), '--output', str(output_dir / 'gpu-check-dp.pkl')]
    return [
        ('several-gpus-without-ddp-refused',  # first: seconds, and never cut by the budget
         [python, '-m', 'openfields.train', *one_process] if n_gpus >= 2 else None),
        ('cuda-tests', [python, '-m', 'pytest', '-q', '-rs', '-m', 'cuda', 'tests']),
        (f'ddp-2-processes-{backend}',
         [python, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'openfields.train',
          '--ddp', '--ddp-backend', backend, *TRAIN_DDP,
          '--synthetic-cache-dir', str(output_dir / 'cache'), '--output', str(output_dir / 'gpu-check-ddp.pkl')]),
        ('bench-train', [python, '-m', 'tools.benchmark', '--device', 'cuda', *BENCH,
                         '--output', str(output_dir / 'train-cuda.json')]),
        ('bench-decode', [python, '-m', 'tools.benchmark_decode', '--output', str(output_dir / 'decode-cuda.json')]),
    ]


def run_step(name: str, command: list[str] | None, deadline: float) -> dict:
    """Run ``command`` until ``deadline`` (time.monotonic); its outcome and the end of its output. A step of
    :data:`REFUSALS` passes when it exits with its status and says its text."""
    if command is None:
        LOG.info('gpu-check: %s skipped: fewer than 2 GPUs', name)
        return {'name': name, 'status': 'skipped', 'reason': 'fewer than 2 GPUs'}
    left = deadline - time.monotonic()
    if left < 10:
        LOG.info('gpu-check: %s skipped: the time budget is spent', name)
        return {'name': name, 'status': 'skipped', 'reason': 'time budget spent'}
    LOG.info('gpu-check: %s (at most %.0f s): %s', name, left, ' '.join(command))
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=left, check=False,
                                env=dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '4')))
        output = result.stdout + result.stderr
        expected_status, expected_text = REFUSALS.get(name, (0, ''))
        status = 'passed' if result.returncode == expected_status and expected_text in result.stderr else 'failed'
        returncode = result.returncode
    except subprocess.TimeoutExpired as timeout:
        status, returncode = 'timed out', None
        output = (timeout.stdout or b'').decode(errors='replace') + (timeout.stderr or b'').decode(errors='replace')
    seconds = round(time.monotonic() - start, 1)
    LOG.info('gpu-check: %s %s in %.0f s', name, status, seconds)
    if status != 'passed':
        LOG.info('%s', output[-3000:])
    return {'name': name, 'status': status, 'returncode': returncode, 'seconds': seconds,
            'command': command, 'output_tail': output[-4000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m tools.gpu_check', description=__doc__.splitlines()[0])
    parser.add_argument('--output-dir', default='outputs/bench')
    parser.add_argument('--budget', type=float, default=480.0, help='seconds for all steps together')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    deadline = time.monotonic() + args.budget
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    device = torch.device('cuda' if cuda else 'cpu')
    names = [name for name, _ in steps(output_dir, torch.cuda.device_count() if cuda else 0)]
    if cuda:
        LOG.info('gpu-check: %d x %s', torch.cuda.device_count(), torch.cuda.get_device_name(0))
        outcomes = [run_step(name, command, deadline)
                    for name, command in steps(output_dir, torch.cuda.device_count())]
    else:
        reason = (f'no GPU: torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA '
                  f'{torch.version.cuda})')
        LOG.info('gpu-check: %s; skipping %s', reason, ', '.join(names))
        outcomes = [{'name': name, 'status': 'skipped', 'reason': reason} for name in names]
    result = {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'version': version(),
              'torch': torch.__version__,
              'hardware': {'cpu': cpu_name(), 'cores': os.cpu_count(), **gpu_hardware(device)},
              'steps': outcomes}
    out = output_dir / 'gpu-check.json'
    write_json(out, result)
    failed = [o['name'] for o in outcomes if o['status'] in ('failed', 'timed out')]
    LOG.info('gpu-check: %s; wrote %s', f'FAILED: {", ".join(failed)}' if failed else 'done', out)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

"""Continuing a run where it stopped: ``--resume PATH|auto``, the checkpoints' ``training_state``.

A run writes ``<out>.epochNNN`` after every validated epoch (or every ``--save-epochs``, see
:mod:`openfields.training.snapshots`) and, when stopped by a signal
(:mod:`openfields.training.preemption`), ``<out>.epochNNN.batchBBBBBB``: NNN epochs done and BBBBBB batches of the
next. Both, and the best snapshot ``<run>.best.pkl``, carry a ``training_state`` (the final ``<out>``, the
model to use, does not)::

    {'position': {'epoch': int, 'batches': int},    # where training continues
     'trainer': {'optimizer', 'scheduler', 'ema', 'n_clipped'},   # Trainer.state_dict(); optimizer
                                                   # None with --no-save-optimizer-state
     'rng': [per-rank {'python', 'numpy', 'torch', 'cuda'}],        # random number generator states
     'seed': int, 'world_size': int, 'batch_size': int, 'batches_per_epoch': int,
     'output': str,                                  # the run's <out>
     'best': {'epoch', 'metric', 'value', 'larger_is_better'} | None,   # openfields.training.snapshots
     'schedule': dict}                               # optimize.LearningRateSchedule.to_dict()

``--resume`` loads it and continues at the next step as if the run had never stopped: the same
computations in the same order, so the same parameters at the end (with ``--loader-workers`` > 0 the
augmentation draws of the resumed epoch differ). ``--epochs`` stays the total.
``--resume auto`` takes the newest checkpoint of the run named by ``--output`` (or, without it, of the
Slurm job: default output names carry ``-slurm<JOB_ID>``) and starts a new run when there is none, so
a requeued job can always pass it.
"""

import argparse
import dataclasses
import glob
import logging
import os
import random

import numpy as np
import torch

from .run_files import Position, RunFiles, names_a_file, position_from_name, slurm_run_pattern, snapshot_glob

LOG = logging.getLogger(__name__)


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('resume')
    group.add_argument('--resume', default=None, metavar='PATH|auto',
                       help='continue the run of this checkpoint (optimizer, schedule, EMA, random state, '
                            'position in the epoch); auto: the newest checkpoint of --output (or of this '
                            'Slurm job), or a new run when there is none')
    group.add_argument('--load-scheduler-state', default=True, action=argparse.BooleanOptionalAction,
                       help='--resume: continue the saved learning-rate schedule and scheduler state (the --lr* '
                            'flags of the resumed run; a warning names what this run\'s flags would change). '
                            'With --no-load-scheduler-state the schedule of this run\'s flags (e.g. new '
                            '--lr-milestones) is placed at the resumed step (epochs done x batches per epoch '
                            '+ batches) and sets the learning rate from the first resumed step on')


def newest_checkpoint(out_pattern: str) -> str | None:
    """The resumable snapshot with the furthest position among the runs whose ``<out>`` matches
    ``out_pattern`` (a glob), or None."""
    candidates = [(position_from_name(path), path) for path in glob.glob(snapshot_glob(out_pattern))]
    candidates = [(position, path) for position, path in candidates if position is not None]
    return max(candidates)[1] if candidates else None


def run_pattern(output: str | None, environ) -> str:
    """The glob of the ``<out>`` of the run that ``--resume auto`` continues."""
    if names_a_file(output):
        return glob.escape(output)
    job_id = environ.get('SLURM_JOB_ID')
    if job_id is None:
        raise ValueError('--resume auto needs --output FILE (or a Slurm job) to know which run to continue')
    return slurm_run_pattern(output, job_id)


@dataclasses.dataclass(frozen=True)
class ResumeSettings:
    """``--resume`` (a path, 'auto' or None), the run's ``--output`` (what 'auto' continues) and
    ``--load-scheduler-state``."""
    resume: str | None = None
    output: str | None = None
    load_scheduler_state: bool = True

    @property
    def auto(self) -> bool:
        return self.resume == 'auto'

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'ResumeSettings':
        if args.resume is not None and getattr(args, 'checkpoint', None):
            raise ValueError('--resume continues a run, --checkpoint starts a new one from trained weights: '
                             'pass only one of them')
        return cls(resume=args.resume, output=args.output, load_scheduler_state=args.load_scheduler_state)


def checkpoint_to_resume(settings: ResumeSettings, environ=None) -> str | None:
    """The checkpoint ``--resume`` names (None: a new run)."""
    if settings.resume is None:
        if names_a_file(settings.output):  # a folder gets a new name
            RunFiles(settings.output).check_unused()
        return None
    if settings.resume != 'auto':
        if not os.path.isfile(settings.resume):
            raise ValueError(f'--resume: file not found: {settings.resume}')
        return settings.resume
    pattern = run_pattern(settings.output, os.environ if environ is None else environ)
    path = newest_checkpoint(pattern)
    if path is None:
        LOG.info('--resume auto: no checkpoint matches %s; starting a new run', snapshot_glob(pattern))
    else:
        LOG.info('--resume auto: continuing from %s', path)
    return path


def rng_state() -> dict:
    """Python's, NumPy's and torch's (CPU and CUDA) global random states as tensors and plain types."""
    version, python_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {'python': [version, list(python_state), gauss],
             'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)},
             'torch': torch.get_rng_state(),
             'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}
    return state


def set_rng_state(state: dict) -> None:
    version, python_state, gauss = state['python']
    random.setstate((version, tuple(python_state), gauss))
    numpy_state = state['numpy']
    np.random.set_state(('MT19937', numpy_state['keys'].numpy().astype(np.uint32), numpy_state['pos'],
                         numpy_state['has_gauss'], numpy_state['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def check_compatible(state: dict, *, world_size: int, batch_size: int, batches_per_epoch: int) -> None:
    """Continuing inside an epoch needs the same samples per step: same world size and batch size."""
    position = Position(**state['position'])
    saved = {'world size': state['world_size'], '--batch-size': state['batch_size'],
             'batches per epoch': state['batches_per_epoch']}
    now = {'world size': world_size, '--batch-size': batch_size, 'batches per epoch': batches_per_epoch}
    changed = [f'{k} {saved[k]} -> {now[k]}' for k in saved if saved[k] != now[k]]
    if not changed:
        return
    if position.batches:
        raise ValueError(f'--resume: the checkpoint stopped inside epoch {position.epoch + 1}; continuing it '
                         f'needs the same data per step, but {", ".join(changed)}')
    LOG.warning('--resume at the start of epoch %d with %s: the learning-rate schedule is kept per epoch '
                'and random states are drawn anew', position.epoch + 1, ', '.join(changed))

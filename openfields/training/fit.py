"""Fit: one training run from its first step to its last file, of any :class:`~openfields.training.recipe.Recipe`
(what is trained: the pose trainer ``openfields.train``'s, the detector run's of top-down mode) under its
:class:`~openfields.training.run_settings.RunSettings` (how it is run: the model wrapped for its acceleration
and ``--ddp``, the optimizer and schedule, the trainer, snapshots and resume).

``fit`` holds the run's lock, removes what a killed predecessor of the same run left half-written,
writes the log, restores a resumed run (``--resume``) exactly, runs the epochs of
:class:`~openfields.training.loop.Trainer` under the stop signals of Slurm, and turns how the run ended
into an exception that says what exists on disk: :class:`Stopped` (resume from ``path``) and
:class:`TrainingFailed` (non-finite loss or weights; names the last good checkpoint or says there is none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib

import torch

from ..network import checkpoint, losses, syncbn
from . import accelerate, optimize, preemption, resume
from .checkpointer import Checkpointer, NonFiniteWeightsError, RunFacts
from .distributed import Context
from .lock import RunLock, RunLocked
from .log import TrainingLog
from .loop import Interrupted, Trainer
from .recipe import Recipe
from .run_files import Position, RunFiles
from .run_settings import RunSettings
from .snapshots import BestTracker

LOG = logging.getLogger(__name__)


class Stopped(Exception):
    """Training ended by a stop signal; ``path`` is the checkpoint to resume from."""

    def __init__(self, signal_name: str | None, path: str):
        super().__init__(f'stopped by {signal_name or "a signal to another rank"}; continue with --resume {path}')
        self.path = path


class TrainingFailed(RuntimeError):
    """The loss or the weights became non-finite; the message says which checkpoint is good."""


@dataclasses.dataclass
class Resumed:
    """The checkpoint ``--resume`` continues: its path and contents (``checkpoint.load``)."""
    path: str
    checkpoint: dict

    @property
    def state(self) -> dict:
        return self.checkpoint['training_state']

    @property
    def position(self) -> Position:
        return Position(**self.state['position'])


def resumed_run(settings: resume.ResumeSettings, context: Context) -> Resumed | None:
    """The checkpoint ``--resume`` continues (every rank checks, rank 0's choice counts), or None."""
    path = context.broadcast_object(resume.checkpoint_to_resume(settings))
    if path is None:
        return None
    loaded = checkpoint.load(path)
    if loaded.get('training_state') is None:
        raise checkpoint.CheckpointError(f'--resume {path}: no training state in it (a final checkpoint); '
                                         'resume from its .epochNNN checkpoint')
    return Resumed(path=path, checkpoint=loaded)


def schedule_for(schedule: optimize.LearningRateSchedule, resumed: Resumed | None,
                 load_scheduler_state: bool = True) -> optimize.LearningRateSchedule:
    """This run's learning-rate schedule; when resuming with the saved scheduler state, the saved run's
    (a warning names what this run's flags would change: --no-load-scheduler-state follows them)."""
    saved = None if resumed is None else resumed.state.get('schedule')
    if saved is None or not load_scheduler_state:
        return schedule
    saved = optimize.LearningRateSchedule.from_dict(saved)
    changes = saved.differences(schedule)
    if changes:
        LOG.warning('--resume: continuing the saved learning-rate schedule; this run\'s flags would change %s '
                    '(pass --no-load-scheduler-state to follow them)', ', '.join(changes))
    return saved


def training_model(network: torch.nn.Module, settings: RunSettings, context: Context,
                   device: torch.device) -> torch.nn.Module:
    """What trains: ``network`` (changed in place to the settings' memory order), under ``--ddp`` in
    DistributedDataParallel (BatchNorm synchronised with ``settings.sync_batchnorm``), compiled with
    ``--compile``. Its parameters are ``network``'s."""
    network = accelerate.to_memory_format(network, settings.accelerate)
    model = network
    if context.active:
        if settings.sync_batchnorm:
            model = syncbn.synchronize_batchnorm(network, device)
        several_datasets = len({meta.dataset for meta in getattr(network, 'head_metas', ())}) > 1
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None,
            find_unused_parameters=several_datasets)  # heads of the other datasets get no gradient
    return accelerate.compiled(model, settings.accelerate)


@contextlib.contextmanager
def exclusive(files: RunFiles, context: Context):
    """While the run trains, rank 0 holds its lock (every rank raises :class:`RunLocked` when another run
    holds it). Then the half-written files of an earlier process of this run (killed during a write) are
    removed: the lock says that no other process of the run is alive to finish them."""
    lock, refusal = None, None
    if context.is_main:
        try:
            lock = RunLock(files.lock).acquire()
        except RunLocked as error:
            refusal = str(error)
    refusal = context.broadcast_object(refusal)
    if refusal is not None:
        raise RunLocked(refusal)
    try:
        if context.is_main:
            for path in files.stale_temp_files():
                LOG.info('removing %s, left half-written by a killed process of this run', path)
                os.remove(path)
        yield
    finally:
        if lock is not None:
            lock.release()


def fit(recipe: Recipe, settings: RunSettings, files: RunFiles, context: Context, device: torch.device,
        log: TrainingLog, resumed: Resumed | None) -> pathlib.Path:
    """Train ``recipe`` under ``settings`` (``settings.seed`` resolved) into ``files``; the final checkpoint's
    path (``files.out``)."""
    LOG.info('training step: %s', settings.accelerate.describe())
    model = training_model(recipe.network, settings, context, device)
    optimizer = settings.optimizer.build(recipe.trainable_parameters())
    schedule = schedule_for(settings.schedule, resumed, settings.resume.load_scheduler_state)
    train_batches = settings.trainer.train_batches
    n_train_batches = min(len(recipe.train_loader), train_batches or len(recipe.train_loader))
    scheduler = optimize.scheduler(optimizer, schedule, n_train_batches)
    facts = RunFacts(seed=settings.seed, world_size=context.world_size, batch_size=settings.batch_size,
                     batches_per_epoch=n_train_batches, schedule=schedule.to_dict())
    checkpointer = Checkpointer(files, recipe.network, context, facts=facts, meta=recipe.meta,
                                settings=settings.snapshots, best=BestTracker(recipe.key_metric),
                                epochs=settings.trainer.epochs,
                                last_good=pathlib.Path(resumed.path) if resumed is not None else None)
    with preemption.StopSignals() as stop, accelerate.backend_switches(settings.accelerate):
        runner = Trainer(model, recipe.loss, optimizer, scheduler, device=device, settings=settings.trainer,
                         log=log, checkpointer=checkpointer, objective=recipe.objective,
                         n_heads=len(recipe.head_metas), batch_hook=recipe.batch_hook, network=recipe.network,
                         distributed=context, stop_signal=lambda: stop.name, test_sets=recipe.test_sets,
                         loggers=log.loggers, precision=accelerate.Precision(settings.accelerate, device))
        start = Position()
        if resumed is not None:
            start = _restore(runner, checkpointer, resumed, context, n_train_batches,
                             settings.resume.load_scheduler_state)
            if start.epoch >= settings.trainer.epochs and settings.resume.auto:
                LOG.info('--resume auto: %s is complete (%d epochs); nothing to train', files.out, start.epoch)
                return files.out
            log.write('resume', checkpoint=resumed.path, epoch=start.epoch, batches=start.batches)
        try:
            runner.loop(recipe.train_loader, recipe.val_loaders, start)
        except (losses.NonFiniteLossError, NonFiniteWeightsError) as error:
            message = str(error) if isinstance(error, NonFiniteWeightsError) else \
                f'{error}; {checkpointer.describe_last_good()}'
            log.write('error', message=message)
            raise TrainingFailed(message) from None
        except Interrupted as interruption:
            path = str(checkpointer.last_good)
            log.write('stopped', message=str(interruption), signal=stop.name, checkpoint=path)
            raise Stopped(stop.name, path) from None
    LOG.info('done: checkpoint %s, log %s', files.out, files.log)
    return files.out


def _restore(runner: Trainer, checkpointer: Checkpointer, resumed: Resumed, context: Context,
             n_train_batches: int, load_scheduler_state: bool) -> Position:
    """Put the trainer, the schedule, the best score and the random states where the resumed run was."""
    state = resumed.state
    resume.check_compatible(state, world_size=context.world_size, batch_size=checkpointer.facts.batch_size,
                            batches_per_epoch=n_train_batches)
    runner.load_state_dict(state['trainer'], scheduler=load_scheduler_state)
    start = resumed.position
    if not load_scheduler_state:
        optimize.fast_forward(runner.scheduler, start.epoch * n_train_batches + start.batches)
    if context.is_main:
        _restore_best(checkpointer.best, state, checkpointer.files)
    checkpointer.best.best = context.broadcast_object(checkpointer.best.best)  # every rank agrees
    if state['world_size'] == context.world_size:
        resume.set_rng_state(state['rng'][context.rank])  # last: nothing may draw after it
    return start


def _restore_best(best: BestTracker, state: dict, files: RunFiles) -> None:
    """A resumed run's best score: its training state's, or its best snapshot's if that is better (written
    after the checkpoint the run resumes)."""
    best.restore(state.get('best'), '--resume')
    if best.key is None or not files.best.is_file():
        return
    try:
        on_disk = checkpoint.load(files.best)['meta'].get('best')
    except checkpoint.CheckpointError as error:
        LOG.warning('%s; the next evaluation replaces it', error)
        return
    best.restore(on_disk, str(files.best))

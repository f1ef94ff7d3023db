"""Train a composite-field pose model: ``python -m openfields.train``.

Read top to bottom: parse flags, join the other processes (``--ddp``), build the data, the model, the loss
and the optimizer, then fit (:mod:`openfields.training.fit`: lock, log, resume, epochs, snapshots).
"""

if __name__ == '__main__':  # python -m openfields.train: tune the process before torch loads
    from openfields import cli_setup as _cli_setup
    _cli_setup.prepare_process()

import argparse
import dataclasses
import datetime
import logging
import os
import pathlib
import random
import socket
import sys

import numpy as np
import torch

from . import cli_setup, config, encoder, outputs, plugin
from .datasets import factory as datasets_factory, sampler
from .datasets.coco import DatasetError
from .metric import scoring
from .network import checkpoint, factory as network_factory, losses, syncbn
from .network.device import resolve_device
from .network import cpu_threads
from .network.pretrained import PretrainedWeightsMissing
from .show import training_debug
from .training import accelerate, distributed, fit, loggers, optimize, preemption, resume, snapshots
from .training.fit import Stopped
from .training.lock import RunLocked
from .training.log import TrainingLog
from .training.loop import TrainerSettings
from .training import loop as trainer
from .training.run_files import RunFiles, default_name, names_a_file, output_path
from .topdown import detector_training, detectors, module as topdown_module
from .version import version

LOG = logging.getLogger('openfields.train')

USER_ERRORS = (ValueError, DatasetError, checkpoint.CheckpointError, PretrainedWeightsMissing, RunLocked)


def parser() -> argparse.ArgumentParser:
    """Every flag of the training CLI: each component adds its own group."""
    plugin.register_all()
    parser = config.ArgumentParser(
        prog='python -m openfields.train', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=f'openfields {version()}')
    parser.add_argument('-o', '--output', default=None,
                        help='checkpoint path; a folder (ending in /) gets the default name '
                             '(default: outputs/<basenet>-<yymmdd-HHMMSS>-<dataset>-<8 hex>.pkl, '
                             'with slurm<JOB_ID> for the 8 hex in a Slurm job)')
    parser.add_argument('--seed', type=int, default=None, help='random seed (default: drawn and logged)')
    parser.add_argument('--device', default='auto', help='auto (cuda, else mps, else cpu), cpu, cuda, cuda:N, mps')
    parser.add_argument('-q', '--quiet', action='store_true', help='only warnings and errors')
    parser.add_argument('--method', default='bu', choices=('bu', 'td'),
                        help='bu: bottom-up, whole images, every individual decoded from the fields; td: top-down, '
                             'a detector (trained first, see --detector) finds the individuals and the pose model '
                             'reads each one\'s crop (docs/topdown.md)')
    config.cli(parser)
    datasets_factory.cli(parser)
    topdown_module.cli(parser)
    detectors.cli(parser)
    detector_training.cli(parser)
    encoder.cli(parser)
    network_factory.cli(parser)
    losses.cli(parser)
    optimize.cli(parser)
    trainer.cli(parser)
    snapshots.cli(parser)
    scoring.cli(parser)
    training_debug.cli(parser)
    loggers.cli(parser)
    resume.cli(parser)
    distributed.cli(parser)
    accelerate.cli(parser)
    return parser


def cli(argv=None) -> argparse.Namespace:
    args = config.parse_args(parser(), argv)
    args.argv = list(sys.argv if argv is None else ['python -m openfields.train', *argv])
    return args


def check_stability_rule(args):
    """BatchNorm with eps divides by at most 1/sqrt(eps): keep lr * clip-grad-value below sqrt(eps)."""
    if args.clip_grad_value and args.lr * args.clip_grad_value > args.batchnorm_eps ** 0.5:
        LOG.warning('lr x clip-grad-value = %.3g > sqrt(batchnorm-eps) = %.3g: the stability rule '
                    'lr * clip_grad_value <= sqrt(eps) is violated; training may diverge',
                    args.lr * args.clip_grad_value, args.batchnorm_eps ** 0.5)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def run(args, launch: distributed.Launch | None = None) -> pathlib.Path:
    """Train; ``launch`` (default: from ``--ddp`` and the environment) places this process in the job."""
    outputs.check_output_path(args.output, '--output', folder=not names_a_file(args.output))
    context = distributed.Context(launch if launch is not None else distributed.launch_from_args(args))
    device = distributed.device_for(context.launch, resolve_device(args.device), args.ddp_backend)
    context.start(device, getattr(args, 'ddp_timeout', 1800.0), args.ddp_backend)
    try:
        return _train(args, context, device)
    finally:
        context.close()


def _resumed_run(args, context) -> fit.Resumed | None:
    """``--resume``: the checkpoint and its state; the run continues with its saved seed."""
    resumed = fit.resumed_run(args, context)
    if resumed is not None:
        saved_seed = resumed.state['seed']
        if args.seed is not None and args.seed != saved_seed:
            LOG.warning('--resume: continuing with the run\'s --seed %d, not %d', saved_seed, args.seed)
        args.seed = saved_seed
    return resumed


def _network(args, datamodule, resumed: fit.Resumed | None):
    """A new network (``--basenet``/``--checkpoint``) or the resumed run's, with its weights."""
    if resumed is None:
        return network_factory.factory(args, datamodule.head_metas)
    saved_checkpoint = resumed.checkpoint
    saved = [meta.full_name for meta in checkpoint.head_metas(saved_checkpoint)]
    wanted = [meta.full_name for meta in datamodule.head_metas]
    if saved != wanted:
        raise ValueError(f'--resume: the checkpoint has heads {saved}, --dataset {args.dataset} trains {wanted}')
    name = saved_checkpoint['model']['basenet']['name']
    if args.basenet not in (None, name):
        raise ValueError(f'--resume: the checkpoint is a {name}, not --basenet {args.basenet}')
    args.basenet = name
    return network_factory.from_checkpoint(saved_checkpoint, datamodule.head_metas)


def _datamodule(args, context, base_stride: int):
    """Rank 0 builds first (it may render or download data), then the others."""
    if context.is_main:
        datamodule = datasets_factory.datamodule_from_args(args, base_stride)
    context.barrier()
    if not context.is_main:
        datamodule = datasets_factory.datamodule_from_args(args, base_stride)
    return datamodule


def _topdown(args, context, device, datamodule, files: RunFiles, resumed: fit.Resumed | None):
    """``--method td``: the detector (trained now, unless given, already trained, or recorded by the resumed
    pose run) and the pose model's data, crops of the individuals; returns the crops' DataModule and what
    the pose checkpoints record of both."""
    if len(datamodule.dataset_modules()) > 1:
        raise ValueError(f'--method td trains on one dataset, not --dataset {args.dataset}')
    recorded = resumed.checkpoint['meta'].get('topdown') if resumed is not None else None
    if recorded is None and resumed is not None:
        raise ValueError(f'--resume {resumed.path}: a bottom-up run; resume it without --method td')
    detector = recorded['detector'] if recorded is not None else \
        detector_training.trained_detector(args, context, device, datamodule, files.out)
    crops = topdown_module.TopDownModule(datamodule, topdown_module.TopDownSettings.from_args(args))
    LOG.info('top-down: detector %s; training the pose model on crops of the individuals', detector)
    return crops, {**crops.checkpoint_meta(), 'detector': str(pathlib.Path(detector).resolve())}


def _distributed_model(network, context, device, sync_bn: bool):
    """What trains: under ``--ddp`` the network in DistributedDataParallel (BatchNorm synchronised)."""
    if not context.active:
        return network
    if sync_bn:
        network = syncbn.synchronize_batchnorm(network, device)
    several_datasets = len({meta.dataset for meta in network.head_metas}) > 1
    return torch.nn.parallel.DistributedDataParallel(
        network, device_ids=[device.index] if device.type == 'cuda' else None,
        find_unused_parameters=several_datasets)  # heads of the other datasets get no gradient


def _key_metric(datamodule, settings: TrainerSettings, snapshot_settings: snapshots.SnapshotSettings):
    """The key metric and each dataset's score names with ``--eval-interval`` (checked before training:
    a ``--key-metric`` the metrics do not produce is an error listing those they do); else (None, {})."""
    if not settings.eval_interval:
        return None, {}
    try:
        names = {name: module.metric_names() for name, module in datamodule.dataset_modules().items()}
    except NotImplementedError as error:  # a plugin's dataset without evaluation
        raise ValueError(f'--eval-interval: {error}') from None
    return snapshots.key_metric(snapshot_settings, names), names


def _test_sets(args, datamodule, network, names: dict, device) -> dict:
    """``--eval-interval``: each dataset's evaluation images (one per batch, at the dataset's default
    evaluation size) and metrics, scored on the network's heads of that dataset."""
    loader_settings = dataclasses.replace(datasets_factory.loader_settings_from_args(
        args, pin_memory=device.type == 'cuda', shuffle=False), batch_size=1)
    test_sets = {}
    for name, module in datamodule.dataset_modules().items():
        head_indices = [i for i, meta in enumerate(network.head_metas) if meta.dataset == name]
        test_sets[name] = module.test_set(head_indices, scoring.ScoringSettings.from_args(args),
                                          loader=loader_settings, names=names[name])
    return test_sets


def _run_files(args, context, resumed: fit.Resumed | None) -> RunFiles:
    """A resumed run continues its own files (unless ``--output`` names another); else ``--output``."""
    if resumed is not None and not names_a_file(args.output):
        return RunFiles(resumed.state['output'])
    name = default_name(network_factory.basenet_name(args), args.dataset, datetime.datetime.now(),
                        ' '.join(args.argv))
    return RunFiles(context.broadcast_object(str(output_path(args.output, name))))


def _meta(args, datamodule) -> dict:
    """What every checkpoint and the log's process record say about the run."""
    return {'args': {k: v for k, v in vars(args).items() if k != 'argv'}, 'argv': args.argv,
            'version': version(), 'plugin_versions': plugin.versions(), 'hostname': socket.gethostname(),
            # what predict decodes with when --decoder is not given (e.g. cifmax for single-animal projects)
            'decoders': {name: module.decoder_names() for name, module in datamodule.dataset_modules().items()}}


def _train(args, context: distributed.Context, device: torch.device) -> pathlib.Path:
    context.check_same_arguments(vars(args))
    resumed = _resumed_run(args, context)
    if args.seed is None:
        args.seed = context.broadcast_object(int.from_bytes(os.urandom(4), 'little') >> 1)
    seed_everything(args.seed)  # the same initial weights on every rank
    files = _run_files(args, context, resumed)
    datamodule = _datamodule(args, context, network_factory.base_stride(
        args, resumed.checkpoint if resumed is not None else None))
    topdown = None
    if args.method == 'td':
        datamodule, topdown = _topdown(args, context, device, datamodule, files, resumed)
        seed_everything(args.seed)  # the pose run starts as it would without the detector run
    network = _network(args, datamodule, resumed).to(device)
    if context.active:
        seed_everything(args.seed + 1_000_003 * context.rank)  # different augmentations on every rank
    plan = _plan(args, context, device, datamodule, network, resumed)
    if topdown is not None:
        plan.meta['topdown'] = topdown
    with fit.exclusive(files, context):
        run_loggers = loggers.build(plan.logger_settings, files, config.resolved(parser(), args)) \
            if context.is_main else None
        log = _start_log(args, context, device, files, datamodule, plan, resumed, run_loggers)
        try:
            return fit.fit(plan, files, context, device, log, resumed,
                           load_scheduler_state=args.load_scheduler_state, resume_auto=args.resume == 'auto')
        finally:
            log.close()


def _plan(args, context, device, datamodule, network, resumed) -> fit.Plan:
    """Loss, loaders, optimizer and schedule of ``network`` on ``datamodule``; the test sets of
    ``--eval-interval`` on rank 0; what trains: ``network`` in its memory order, under DDP, compiled."""
    settings = TrainerSettings.from_args(args)
    logger_settings = loggers.LoggerSettings.from_args(args)  # a missing logger package: before any file
    speed = accelerate.AccelerateSettings.from_args(args, device)
    LOG.info('training step: %s', speed.describe())
    network = accelerate.to_memory_format(network, speed)
    snapshot_settings = snapshots.SnapshotSettings.from_args(args)
    key_metric, metric_names = _key_metric(datamodule, settings, snapshot_settings)
    check_stability_rule(args)
    debug_plots = training_debug.TrainingDebug.from_args(args, network)  # None without debug flags
    loader_settings = dataclasses.replace(  # the same shuffling on every rank, plots by rank 0 only
        datasets_factory.loader_settings_from_args(args, pin_memory=device.type == 'cuda',
                                                   shuffle=debug_plots is None),
        rank=context.rank, world_size=context.world_size)
    train_loader = datamodule.train_loader(loader_settings)
    val_loaders = datamodule.val_loaders(loader_settings)
    for what, loader in (('training', train_loader), *(('validation', v) for v in val_loaders.values())):
        sampler.check_sharded(loader, context.world_size, f'{args.dataset} {what}')
    test_sets = _test_sets(args, datamodule, network, metric_names, device) \
        if settings.eval_interval and context.is_main else {}
    model = accelerate.compiled(_distributed_model(network, context, device, args.ddp_sync_bn), speed)
    return fit.Plan(network=network, model=model,
                    loss=losses.factory(args, network.head_metas),
                    optimizer=optimize.optimizer_from_args(args, network.parameters()),
                    schedule=fit.schedule_for(args, resumed), train_loader=train_loader, val_loaders=val_loaders,
                    settings=settings, snapshot_settings=snapshot_settings, seed=args.seed,
                    batch_size=args.batch_size, meta=_meta(args, datamodule), key_metric=key_metric,
                    test_sets=test_sets, batch_hook=debug_plots if context.is_main else None,
                    train_batches=args.train_batches, logger_settings=logger_settings, accelerate=speed)


def _start_log(args, context, device, files: RunFiles, datamodule, plan: fit.Plan, resumed,
               run_loggers=None) -> TrainingLog:
    """Rank 0 writes the run's config and dataset files and opens the log with a ``process`` record; the
    log hands its records to ``run_loggers`` (``--logger``)."""
    log = TrainingLog(files.log if context.is_main else None, run_loggers)
    if context.is_main:
        config.write(files.config, parser(), args)
        datamodule.write_run_files(files.out)  # e.g. the data split, for evaluating this run's checkpoints
    log.write('process', **plan.meta, datasets=datamodule.describe_datasets(),
              world_size=context.world_size, global_batch_size=args.batch_size * context.world_size,
              launcher=context.launch.launcher, device=str(device), cpu_threads=torch.get_num_threads(),
              omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
              resumed_from=resumed.path if resumed is not None else None)
    LOG.info('training %s on %s (%d process%s) on %s; writing %s', args.basenet, args.dataset,
             context.world_size, 'es' if context.active else '', device, files.out)
    cpu_threads.log_choice()
    return log


def configure_logging(quiet: bool, launch: distributed.Launch):
    """Rank 0 logs as asked; the other ranks log warnings and errors only, prefixed with their rank."""
    prefix = f'rank {launch.rank}/{launch.world_size} ' if launch.world_size > 1 else ''
    cli_setup.configure_logging(quiet or not launch.is_main, prefix)


def main(argv=None):
    launch = distributed.Launch()

    def join_and_configure(args):
        nonlocal launch
        launch = distributed.launch_from_args(args)
        configure_logging(args.quiet, launch)

    def train(args):
        run(args, launch)

    cli_setup.run_cli(
        'openfields.train', cli, train, USER_ERRORS, argv=argv, setup=join_and_configure,
        failures=[cli_setup.Failure((fit.TrainingFailed,), 1),
                  cli_setup.Failure((Stopped,), preemption.EXIT_CODE, 'stopped', main_rank_only=True)],
        interrupted='checkpoints written so far are complete (the current one, if any, was not written)',
        rank=lambda: (launch.rank, launch.world_size))


if __name__ == '__main__':
    main()

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
from .deeplabcut import snapshot as dlc_snapshot
from .metric import scoring
from .network import checkpoint, factory as network_factory, losses
from .network.device import check_one_gpu_is_meant, resolve_device
from .network import cpu_threads
from .network.pretrained import PretrainedWeightsMissing
from .show import training_debug
from .training import accelerate, distributed, fit, loggers, optimize, preemption, resume, snapshots
from .training.fit import Stopped
from .training.lock import RunLocked
from .training.log import TrainingLog
from .training.loop import TrainerSettings
from .training import loop as trainer
from .training.recipe import Recipe
from .training.run_settings import RunSettings
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
    parser.add_argument('--device', default='auto',
                        help='auto (cuda, else mps, else cpu), cpu, cuda, cuda:N, mps; unlike OpenPifPaf, several '
                             'visible GPUs are not shared by one process (no DataParallel): auto or cuda with '
                             'several is refused without --ddp (start one process per GPU with torchrun and --ddp)')
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
    dlc_snapshot.cli(parser)
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


def check_stability_rule(settings: RunSettings, network: network_factory.NetworkChoice):
    """BatchNorm with eps divides by at most 1/sqrt(eps): keep lr * clip-grad-value below sqrt(eps)."""
    lr, clip, eps = settings.optimizer.lr, settings.trainer.clip_grad_value, network.batchnorm_eps
    if clip and lr * clip > eps ** 0.5:
        LOG.warning('lr x clip-grad-value = %.3g > sqrt(batchnorm-eps) = %.3g: the stability rule '
                    'lr * clip_grad_value <= sqrt(eps) is violated; training may diverge', lr * clip, eps ** 0.5)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def run(args, launch: distributed.Launch | None = None) -> pathlib.Path:
    """Train; ``launch`` (default: from ``--ddp`` and the environment) places this process in the job."""
    outputs.check_output_path(args.output, '--output', folder=not names_a_file(args.output))
    context = distributed.Context(launch if launch is not None else distributed.launch_from_args(args))
    check_one_gpu_is_meant(args.device, torch.cuda.device_count(), args.ddp or context.active, args.batch_size)
    device = distributed.device_for(context.launch, resolve_device(args.device), args.ddp_backend)
    context.start(device, getattr(args, 'ddp_timeout', 1800.0), args.ddp_backend)
    try:
        return _train(args, context, device)
    finally:
        context.close()


def _train(args, context: distributed.Context, device: torch.device) -> pathlib.Path:
    """The flags read once, into how the run trains (:class:`RunSettings`) and what it trains (the
    :class:`~openfields.training.recipe.Recipe`: network, loss, data, test sets, key metric), then fit."""
    context.check_same_arguments(vars(args))
    settings = RunSettings.from_args(args, device)  # a missing logger package, --compile without a compiler...
    resumed = fit.resumed_run(settings.resume, context)
    settings = dataclasses.replace(settings, seed=_seed(settings.seed, resumed, context))
    seed_everything(settings.seed)  # the same initial weights on every rank
    choice = network_factory.NetworkChoice.from_args(args, resumed=resumed.checkpoint if resumed else None)
    check_stability_rule(settings, choice)
    if context.is_main:  # a missing weights file stops the run before its data is built; one download
        weights = choice.pretrained_weights
    context.barrier()
    weights = choice.pretrained_weights  # the other ranks find rank 0's file in the cache
    # the command's flags take the values the run resolved: its checkpoints, log and config file record them
    args.seed, args.basenet = settings.seed, choice.basenet
    if choice.loaded is None and choice.dlc_snapshot is None:  # the basenet's default resolved: 'auto' or False
        args.basenet_pretrained = choice.pretrained if choice.pretrained is not None else False
    files = _run_files(args.output, choice.basenet, args.dataset, args.argv, context, resumed)
    if context.is_main:  # rank 0 builds first (it may render or download data), then the others
        datamodule = datasets_factory.datamodule_from_args(args, choice.stride)
    context.barrier()
    if not context.is_main:
        datamodule = datasets_factory.datamodule_from_args(args, choice.stride)
    topdown = None
    if args.method == 'td':
        detector = detector_training.DetectorChoice.from_args(args)
        datamodule, topdown = _topdown(datamodule, topdown_module.TopDownSettings.from_args(args), detector,
                                       settings, context, device, files, resumed)
        seed_everything(settings.seed)  # the pose run starts as it would without the detector run
    meta = _meta(vars(args), args.argv, datamodule)
    meta['basenet_weights'] = weights.record() if weights is not None else None  # source, url, path, sha256
    if topdown is not None:
        meta['topdown'] = topdown
    network = choice.build(datamodule.head_metas).to(device)
    if context.active:
        seed_everything(settings.seed + 1_000_003 * context.rank)  # different augmentations on every rank
    debug_plots = training_debug.TrainingDebug.from_args(args, network)  # None without debug flags
    recipe = _recipe(network, datamodule, settings, context, device, meta=meta,
                     loss=losses.LossSettings.from_args(args),
                     scoring_settings=scoring.ScoringSettings.from_args(args), debug_plots=debug_plots)
    with fit.exclusive(files, context):
        run_loggers = None
        if context.is_main:
            run_loggers = loggers.build(settings.loggers, files, config.resolved(parser(), args))
            config.write(files.config, parser(), args)
        log = _start_log(context, device, files, datamodule, recipe, settings, resumed, run_loggers)
        try:
            return fit.fit(recipe, settings, files, context, device, log, resumed)
        finally:
            log.close()


def _seed(flag: int | None, resumed: fit.Resumed | None, context: distributed.Context) -> int:
    """The run's seed: a resumed run continues with its saved one; else ``--seed``, or drawn by rank 0."""
    if resumed is not None:
        saved = resumed.state['seed']
        if flag is not None and flag != saved:
            LOG.warning('--resume: continuing with the run\'s --seed %d, not %d', saved, flag)
        return saved
    if flag is not None:
        return flag
    return context.broadcast_object(int.from_bytes(os.urandom(4), 'little') >> 1)


def _topdown(datamodule, topdown_settings: topdown_module.TopDownSettings, detector: detector_training.DetectorChoice,
             settings: RunSettings, context, device, files: RunFiles, resumed: fit.Resumed | None):
    """``--method td``: the detector (trained now under the pose run's ``settings`` with the detector's own,
    unless given, already trained, or recorded by the resumed pose run) and the pose model's data, crops of the
    individuals; returns the crops' DataModule and what the pose checkpoints record of both."""
    if len(datamodule.dataset_modules()) > 1:
        raise ValueError(f'--method td trains on one dataset, not --dataset {"-".join(datamodule.dataset_modules())}')
    recorded = resumed.checkpoint['meta'].get('topdown') if resumed is not None else None
    if recorded is None and resumed is not None:
        raise ValueError(f'--resume {resumed.path}: a bottom-up run; resume it without --method td')
    path = recorded['detector'] if recorded is not None else \
        detector_training.detector_for(detector, settings, context, device, datamodule, files.out)
    crops = topdown_module.TopDownModule(datamodule, topdown_settings)
    LOG.info('top-down: detector %s; training the pose model on crops of the individuals', path)
    return crops, {**crops.checkpoint_meta(), 'detector': str(pathlib.Path(path).resolve())}


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


def _recipe(network, datamodule, settings: RunSettings, context, device, *, meta: dict, loss: losses.LossSettings,
            scoring_settings: scoring.ScoringSettings, debug_plots) -> Recipe:
    """What the pose run trains: ``network`` on ``datamodule`` with the composite-field loss; the test sets of
    ``--eval-interval`` on rank 0; the debug plots (``debug_plots``, rank 0) see the batches unshuffled."""
    key_metric, metric_names = _key_metric(datamodule, settings.trainer, settings.snapshots)
    pin_memory = device.type == 'cuda'
    loader_settings = settings.loader.settings(  # the same shuffling on every rank
        pin_memory=pin_memory, shuffle=debug_plots is None, seed=settings.seed or 0, rank=context.rank,
        world_size=context.world_size)
    train_loader = datamodule.train_loader(loader_settings)
    val_loaders = datamodule.val_loaders(loader_settings)
    dataset = '-'.join(datamodule.dataset_modules())
    for what, loader in (('training', train_loader), *(('validation', v) for v in val_loaders.values())):
        sampler.check_sharded(loader, context.world_size, f'{dataset} {what}')
    test_sets = {}
    if settings.trainer.eval_interval and context.is_main:
        test_loader = dataclasses.replace(settings.loader.settings(
            pin_memory=pin_memory, shuffle=False, seed=settings.seed or 0), batch_size=1)
        test_sets = _test_sets(datamodule, network, metric_names, scoring_settings, test_loader)
    return Recipe(network=network, loss=losses.build(loss, network.head_metas), train_loader=train_loader,
                  val_loaders=val_loaders, meta=meta, key_metric=key_metric, test_sets=test_sets,
                  batch_hook=debug_plots if context.is_main else None)


def _test_sets(datamodule, network, names: dict, scoring_settings: scoring.ScoringSettings, loader_settings) -> dict:
    """``--eval-interval``: each dataset's evaluation images (one per batch, at the dataset's default
    evaluation size) and metrics, scored on the network's heads of that dataset."""
    test_sets = {}
    for name, module in datamodule.dataset_modules().items():
        head_indices = [i for i, meta in enumerate(network.head_metas) if meta.dataset == name]
        test_sets[name] = module.test_set(head_indices, scoring_settings, loader=loader_settings, names=names[name])
    return test_sets


def _run_files(output: str | None, basenet: str, dataset: str, argv: list[str], context,
               resumed: fit.Resumed | None) -> RunFiles:
    """A resumed run continues its own files (unless ``--output`` names another); else ``--output``."""
    if resumed is not None and not names_a_file(output):
        return RunFiles(resumed.state['output'])
    name = default_name(basenet, dataset, datetime.datetime.now(), ' '.join(argv))
    return RunFiles(context.broadcast_object(str(output_path(output, name))))


def _meta(flags: dict, argv: list[str], datamodule) -> dict:
    """What every checkpoint and the log's process record say about the run (``flags``: every flag's value,
    as the run resolved it)."""
    return {'args': {k: v for k, v in flags.items() if k != 'argv'}, 'argv': argv,
            'version': version(), 'plugin_versions': plugin.versions(), 'hostname': socket.gethostname(),
            # what predict decodes with when --decoder is not given (e.g. cifmax for single-animal projects)
            'decoders': {name: module.decoder_names() for name, module in datamodule.dataset_modules().items()}}


def _start_log(context, device, files: RunFiles, datamodule, recipe: Recipe, settings: RunSettings, resumed,
               run_loggers=None) -> TrainingLog:
    """Rank 0 writes the run's dataset files and opens the log with a ``process`` record; the log hands its
    records to ``run_loggers`` (``--logger``)."""
    log = TrainingLog(files.log if context.is_main else None, run_loggers)
    if context.is_main:
        datamodule.write_run_files(files.out)  # e.g. the data split, for evaluating this run's checkpoints
    log.write('process', **recipe.meta, datasets=datamodule.describe_datasets(),
              world_size=context.world_size, global_batch_size=settings.batch_size * context.world_size,
              launcher=context.launch.launcher, device=str(device), cpu_threads=torch.get_num_threads(),
              omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
              resumed_from=resumed.path if resumed is not None else None)
    LOG.info('training %s on %s (%d process%s) on %s; writing %s', recipe.meta['args']['basenet'],
             recipe.meta['args']['dataset'], context.world_size, 'es' if context.active else '', device, files.out)
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

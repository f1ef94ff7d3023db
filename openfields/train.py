"""Train a composite-field pose model: ``python -m openfields.train``.

Read top to bottom: parse flags, join the other processes (``--ddp``), build the data, build the model and
loss, restore a stopped run (``--resume``), run the epochs, save (regular, best and final snapshots, see
:mod:`openfields.snapshots`).
"""

import argparse
import dataclasses
import datetime
import hashlib
import logging
import os
import pathlib
import random
import socket
import sys

import numpy as np
import torch

from . import config, distributed, encoder, optimize, plugin, preemption, resume, snapshots, trainer
from .datasets import factory as datasets_factory, sampler
from .datasets.coco import DatasetError
from .network import checkpoint, factory as network_factory
from .network import losses, syncbn
from .network.pretrained import PretrainedWeightsMissing
from .show import training_debug
from .training_log import TrainingLog
from .malloc_tuning import tune_glibc_malloc
from .metric import scoring
from .version import version

LOG = logging.getLogger('openfields.train')

USER_ERRORS = (ValueError, DatasetError, checkpoint.CheckpointError, PretrainedWeightsMissing)


def parser() -> argparse.ArgumentParser:
    """Every flag of the training CLI: each component adds its own group."""
    plugin.register_all()
    parser = argparse.ArgumentParser(
        prog='python -m openfields.train', description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--version', action='version', version=f'openfields {version()}')
    parser.add_argument('-o', '--output', default=None,
                        help='checkpoint path; a folder (ending in /) gets the default name '
                             '(default: outputs/<basenet>-<yymmdd-HHMMSS>-<dataset>-<8 hex>.pkl, '
                             'with slurm<JOB_ID> for the 8 hex in a Slurm job)')
    parser.add_argument('--seed', type=int, default=None, help='random seed (default: drawn and logged)')
    parser.add_argument('--device', default='auto', help='auto (cuda, else mps, else cpu), cpu, cuda, cuda:N, mps')
    parser.add_argument('-q', '--quiet', action='store_true', help='only warnings and errors')
    config.cli(parser)
    datasets_factory.cli(parser)
    encoder.cli(parser)
    network_factory.cli(parser)
    losses.cli(parser)
    optimize.cli(parser)
    trainer.cli(parser)
    snapshots.cli(parser)
    training_debug.cli(parser)
    resume.cli(parser)
    distributed.cli(parser)
    return parser


def cli(argv=None) -> argparse.Namespace:
    args = config.parse_args(parser(), argv)
    args.argv = list(sys.argv if argv is None else ['python -m openfields.train', *argv])
    return args


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f'--device {name!r} is not a device (auto, cpu, cuda, cuda:N, mps)') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {name}: CUDA is not available on this machine')
    return device


def output_path(args, now: datetime.datetime, environ=None) -> pathlib.Path:
    """Under Slurm the name ends in ``-slurm<JOB_ID>``, so that a requeued job finds its run."""
    stamp = now.strftime('%y%m%d-%H%M%S')
    job_id = (os.environ if environ is None else environ).get('SLURM_JOB_ID')
    token = f'slurm{job_id}' if job_id else \
        hashlib.sha256(f'{stamp} {os.getpid()} {args.argv}'.encode()).hexdigest()[:8]
    default_name = f'{args.basenet}-{stamp}-{args.dataset}-{token}.pkl'
    if args.output is None:
        return pathlib.Path('outputs') / default_name
    if args.output.endswith('/') or pathlib.Path(args.output).is_dir():
        return pathlib.Path(args.output) / default_name
    return pathlib.Path(args.output)


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


class Stopped(Exception):
    """Training ended by a stop signal; ``path`` is the checkpoint to resume from."""

    def __init__(self, signal_name: str | None, path: str):
        super().__init__(f'stopped by {signal_name or "a signal to another rank"}; continue with --resume {path}')
        self.path = path


def run(args, launch: distributed.Launch | None = None) -> pathlib.Path:
    """Train; ``launch`` (default: from ``--ddp`` and the environment) places this process in the job."""
    context = distributed.Context(launch if launch is not None else distributed.launch_from_args(args))
    device = distributed.device_for(context.launch, resolve_device(args.device))
    context.start(device, getattr(args, 'ddp_timeout', 1800.0))
    try:
        return _train(args, context, device)
    finally:
        context.close()


def _resumed_state(args, context) -> tuple[str | None, dict | None]:
    """The checkpoint ``--resume`` continues (every rank checks, rank 0's choice counts) and its state."""
    path = context.broadcast_object(resume.checkpoint_to_resume(args))
    if path is None:
        return None, None
    resumed = checkpoint.load(path)
    if resumed.get('training_state') is None:
        raise checkpoint.CheckpointError(f'--resume {path}: no training state in it (a final checkpoint); '
                                         'resume from its .epochNNN checkpoint')
    saved_seed = resumed['training_state']['seed']
    if args.seed is not None and args.seed != saved_seed:
        LOG.warning('--resume: continuing with the run\'s --seed %d, not %d', saved_seed, args.seed)
    args.seed = saved_seed
    return path, resumed


def _schedule(args, resumed) -> optimize.LearningRateSchedule:
    """This run's learning-rate schedule; when resuming with the saved scheduler state, the saved run's
    (a warning names what this run's flags would change: --no-load-scheduler-state follows them)."""
    schedule = optimize.LearningRateSchedule.from_args(args)
    saved = None if resumed is None else resumed['training_state'].get('schedule')
    if saved is None or not args.load_scheduler_state:
        return schedule
    saved = optimize.LearningRateSchedule.from_dict(saved)
    changes = saved.differences(schedule)
    if changes:
        LOG.warning('--resume: continuing the saved learning-rate schedule; this run\'s flags would change %s '
                    '(pass --no-load-scheduler-state to follow them)', ', '.join(changes))
    return saved


def _network(args, datamodule, resumed):
    """A new network (``--basenet``/``--checkpoint``) or the resumed run's, with its weights."""
    if resumed is None:
        return network_factory.factory(args, datamodule.head_metas)
    saved = [meta.full_name for meta in checkpoint.head_metas(resumed)]
    wanted = [meta.full_name for meta in datamodule.head_metas]
    if saved != wanted:
        raise ValueError(f'--resume: the checkpoint has heads {saved}, --dataset {args.dataset} trains {wanted}')
    name = resumed['model']['basenet']['name']
    if args.basenet not in (None, name):
        raise ValueError(f'--resume: the checkpoint is a {name}, not --basenet {args.basenet}')
    network = network_factory.from_checkpoint(resumed, datamodule.head_metas)
    args.basenet = name
    return network


def _datamodule(args, context, base_stride: int):
    """Rank 0 builds first (it may render or download data), then the others."""
    if context.is_main:
        datamodule = datasets_factory.datamodule_from_args(args, base_stride)
    context.barrier()
    if not context.is_main:
        datamodule = datasets_factory.datamodule_from_args(args, base_stride)
    return datamodule


def _key_metric(datamodule, settings: trainer.TrainerSettings, snapshot_settings: snapshots.SnapshotSettings):
    """The key metric and each dataset's score names with ``--eval-interval`` (checked before training:
    a ``--key-metric`` the metrics do not produce is an error listing those they do); else (None, {})."""
    if not settings.eval_interval:
        return None, {}
    try:
        names = {name: module.metric_names() for name, module in datamodule.dataset_modules().items()}
    except NotImplementedError as error:  # a plugin's dataset without evaluation
        raise ValueError(f'--eval-interval: {error}') from None
    return snapshots.key_metric(snapshot_settings, names), names


def _test_sets(args, datamodule, network, names: dict, device) -> dict[str, scoring.TestSet]:
    """``--eval-interval``: each dataset's evaluation images (one per batch, at the dataset's default
    evaluation size) and metrics, scored on the network's heads of that dataset."""
    loader_settings = dataclasses.replace(datasets_factory.loader_settings_from_args(
        args, pin_memory=device.type == 'cuda', shuffle=False), batch_size=1)
    test_sets = {}
    for name, module in datamodule.dataset_modules().items():
        head_indices = [i for i, meta in enumerate(network.head_metas) if meta.dataset == name]
        test_sets[name] = scoring.TestSet(module.eval_loader(loader_settings), head_indices, module.metrics,
                                          names[name], decoder_names=module.decoder_names())
    return test_sets


def _restore_best(best: snapshots.BestTracker, state: dict, out: pathlib.Path) -> None:
    """A resumed run's best score: its training state's, or its best snapshot's if that is better (written
    after the checkpoint the run resumes)."""
    best.restore(state.get('best'), '--resume')
    path = snapshots.best_path(out)
    if best.key is None or not path.is_file():
        return
    try:
        on_disk = checkpoint.load(path)['meta'].get('best')
    except checkpoint.CheckpointError as error:
        LOG.warning('%s; the next evaluation replaces it', error)
        return
    best.restore(on_disk, str(path))


def _train(args, context: distributed.Context, device: torch.device) -> pathlib.Path:
    context.check_same_arguments(vars(args))
    resume_path, resumed = _resumed_state(args, context)
    if args.seed is None:
        args.seed = context.broadcast_object(int.from_bytes(os.urandom(4), 'little') >> 1)
    seed_everything(args.seed)  # the same initial weights on every rank
    settings = trainer.TrainerSettings.from_args(args)
    snapshot_settings = snapshots.SnapshotSettings.from_args(args)
    schedule = _schedule(args, resumed)
    datamodule = _datamodule(args, context, network_factory.base_stride(args, resumed))
    key_metric, metric_names = _key_metric(datamodule, settings, snapshot_settings)
    network = _network(args, datamodule, resumed).to(device)
    if context.active:
        seed_everything(args.seed + 1_000_003 * context.rank)  # different augmentations on every rank
    if context.active and args.ddp_sync_bn:
        network = syncbn.synchronize_batchnorm(network, device)
    model = network
    if context.active:
        several_datasets = len({meta.dataset for meta in network.head_metas}) > 1
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == 'cuda' else None,
            find_unused_parameters=several_datasets)  # heads of the other datasets get no gradient
    loss = losses.factory(args, network.head_metas)
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
    optimizer = optimize.optimizer_from_args(args, network.parameters())
    n_train_batches = min(len(train_loader), args.train_batches or len(train_loader))
    scheduler = optimize.scheduler(optimizer, schedule, n_train_batches)

    if resumed is not None and not resume.names_a_file(args.output):  # continue the run where it was
        out = pathlib.Path(resumed['training_state']['output'])
    else:
        out = pathlib.Path(context.broadcast_object(str(output_path(args, datetime.datetime.now()))))
    meta = {'args': {k: v for k, v in vars(args).items() if k != 'argv'}, 'argv': args.argv,
            'version': version(), 'plugin_versions': plugin.versions(), 'hostname': socket.gethostname(),
            # what predict decodes with when --decoder is not given (e.g. cifmax for single-animal projects)
            'decoders': {name: module.decoder_names() for name, module in datamodule.dataset_modules().items()}}
    log = TrainingLog(f'{out}.log' if context.is_main else None)
    if context.is_main:
        config.write(f'{out}.config.json', parser(), args)
        datamodule.write_run_files(out)  # e.g. the data split, for evaluating this run's checkpoints
    log.write('process', **meta, datasets=datamodule.describe_datasets(),
              world_size=context.world_size, global_batch_size=args.batch_size * context.world_size,
              launcher=context.launch.launcher, device=str(device), resumed_from=resume_path)
    LOG.info('training %s on %s (%d train batches per epoch, %d process%s) on %s; writing %s', args.basenet,
             args.dataset, n_train_batches, context.world_size, 'es' if context.active else '', device, out)

    saved = []
    best = snapshots.BestTracker(key_metric)

    def save(position: resume.Position, interrupted: bool, trainer_state: dict, snapshot: bool = True,
             scores: dict | None = None):
        rng = context.gather_objects(resume.rng_state())  # a collective: on every rank
        improved = scores is not None and best.update(position.epoch, scores)  # the same on every rank
        state = {'position': dataclasses.asdict(position), 'trainer': trainer_state, 'rng': rng,
                 'seed': args.seed, 'world_size': context.world_size, 'batch_size': args.batch_size,
                 'batches_per_epoch': n_train_batches, 'output': str(out), 'best': best.state_dict(),
                 'schedule': schedule.to_dict()}
        snapshot_state = state if snapshot_settings.save_optimizer_state else snapshots.without_optimizer(state)
        path = resume.checkpoint_path(out, position, interrupted=interrupted)
        if interrupted or snapshot:
            saved.append(path)
        if context.is_main:
            if interrupted or snapshot:  # on a stop signal, with the optimizer state: exact resume
                checkpoint.save(path, network, epoch=position.epoch, meta=meta,
                                training_state=state if interrupted else snapshot_state)
            if snapshot and not interrupted:
                for stale in resume.interrupted_checkpoints(out):
                    if resume.position_from_name(stale) <= position:
                        os.remove(stale)
                snapshots.rotate(out, snapshot_settings.max_snapshots)
            if improved:
                checkpoint.save(snapshots.best_path(out), network, epoch=position.epoch,
                                meta={**meta, 'best': best.state_dict()}, training_state=snapshot_state)
                LOG.info('epoch %d: new best %s %.4f, wrote %s', position.epoch, key_metric.name,
                         best.best['value'], snapshots.best_path(out))
            if position.epoch == settings.epochs and not interrupted:
                checkpoint.save(out, network, epoch=position.epoch, meta=meta)
        context.barrier()  # nobody leaves (and has a launcher stop rank 0) before the file is written

    with preemption.StopSignals() as stop:
        runner = trainer.Trainer(model, loss, optimizer, scheduler, device=device, settings=settings,
                                 log=log, save_checkpoint=save, n_heads=len(network.head_metas),
                                 batch_hook=debug_plots if context.is_main else None, network=network,
                                 distributed=context, stop_signal=lambda: stop.name, test_sets=test_sets)
        start = resume.Position()
        if resumed is not None:
            state = resumed['training_state']
            resume.check_compatible(state, world_size=context.world_size, batch_size=args.batch_size,
                                    batches_per_epoch=n_train_batches)
            runner.load_state_dict(state['trainer'], scheduler=args.load_scheduler_state)
            start = resume.Position(**state['position'])
            if not args.load_scheduler_state:
                optimize.fast_forward(scheduler, start.epoch * n_train_batches + start.batches)
            if context.is_main:
                _restore_best(best, state, out)
            best.best = context.broadcast_object(best.best)  # every rank agrees on what beats it
            if start.epoch >= settings.epochs and args.resume == 'auto':
                LOG.info('--resume auto: %s is complete (%d epochs); nothing to train', out, start.epoch)
                return out
            if state['world_size'] == context.world_size:
                resume.set_rng_state(state['rng'][context.rank])  # last: nothing may draw after it
            log.write('resume', checkpoint=resume_path, epoch=start.epoch, batches=start.batches)
        try:
            runner.loop(train_loader, val_loaders, start)
        except losses.NonFiniteLossError as error:
            log.write('error', message=str(error))
            raise
        except trainer.Interrupted as interruption:
            log.write('stopped', message=str(interruption), signal=stop.name, checkpoint=saved[-1])
            raise Stopped(stop.name, saved[-1]) from None
    LOG.info('done: checkpoint %s, log %s.log', out, out)
    return out


def configure_logging(quiet: bool, launch: distributed.Launch):
    """Rank 0 logs as asked; the other ranks log warnings and errors only, prefixed with their rank."""
    prefix = f'rank {launch.rank}/{launch.world_size} ' if launch.world_size > 1 else ''
    logging.basicConfig(level=logging.WARNING if quiet or not launch.is_main else logging.INFO,
                        format=f'%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s', datefmt='%H:%M:%S')


def main(argv=None):
    args = cli(argv)
    tune_glibc_malloc()
    launch = distributed.Launch()
    try:
        launch = distributed.launch_from_args(args)
        configure_logging(args.quiet, launch)
        run(args, launch)
    except losses.NonFiniteLossError as error:
        _exit(launch, 1, f'{error}; the last saved checkpoint is intact')
    except USER_ERRORS as error:
        _exit(launch, 2, str(error))
    except Stopped as stopped:
        _exit(launch, preemption.EXIT_CODE, str(stopped))
    except KeyboardInterrupt:
        _exit(launch, 130, 'interrupted; the last saved checkpoint is intact')


def _exit(launch: distributed.Launch, code: int, message: str):
    rank = f' (rank {launch.rank}/{launch.world_size})' if launch.world_size > 1 else ''
    kind = 'stopped' if code == preemption.EXIT_CODE else 'error'
    if code == preemption.EXIT_CODE and not launch.is_main:
        sys.exit(code)  # rank 0 says it
    print(f'openfields.train: {kind}{rank}: {message}', file=sys.stderr)
    sys.exit(code)


if __name__ == '__main__':
    main()

"""Train a composite-field pose model: ``python -m openfields.train``.

Read top to bottom: parse flags, build the data, build the model and loss, run the epochs, save.
"""

import argparse
import datetime
import hashlib
import logging
import os
import pathlib
import socket
import sys

import torch

from . import config, encoder, optimize, plugin, trainer
from .datasets import factory as datasets_factory
from .datasets.coco import DatasetError
from .network import checkpoint, factory as network_factory
from .network import losses
from .network.pretrained import PretrainedWeightsMissing
from .show import training_debug
from .training_log import TrainingLog
from .malloc_tuning import tune_glibc_malloc
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
                             '(default: outputs/<basenet>-<yymmdd-HHMMSS>-<dataset>-<8 hex>.pkl)')
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
    training_debug.cli(parser)
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


def output_path(args, now: datetime.datetime) -> pathlib.Path:
    stamp = now.strftime('%y%m%d-%H%M%S')
    token = hashlib.sha256(f'{stamp} {os.getpid()} {args.argv}'.encode()).hexdigest()[:8]
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


def seed_everything(args):
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), 'little') >> 1
    torch.manual_seed(args.seed)


def run(args) -> pathlib.Path:
    seed_everything(args)
    device = resolve_device(args.device)
    settings = trainer.TrainerSettings.from_args(args)
    schedule = optimize.LearningRateSchedule.from_args(args)
    datamodule = datasets_factory.datamodule_from_args(args)
    model = network_factory.factory(args, datamodule.head_metas).to(device)
    loss = losses.factory(args, model.head_metas)
    check_stability_rule(args)
    debug_plots = training_debug.TrainingDebug.from_args(args, model)  # None without debug flags
    loader_settings = datasets_factory.loader_settings_from_args(args, pin_memory=device.type == 'cuda',
                                                                 shuffle=debug_plots is None)
    train_loader = datamodule.train_loader(loader_settings)
    val_loaders = datamodule.val_loaders(loader_settings)
    optimizer = optimize.optimizer_from_args(args, model.parameters())
    n_train_batches = min(len(train_loader), args.train_batches or len(train_loader))
    scheduler = optimize.scheduler(optimizer, schedule, n_train_batches)

    out = output_path(args, datetime.datetime.now())
    meta = {'args': {k: v for k, v in vars(args).items() if k != 'argv'}, 'argv': args.argv,
            'version': version(), 'plugin_versions': plugin.versions(), 'hostname': socket.gethostname()}
    log = TrainingLog(f'{out}.log')
    config.write(f'{out}.config.json', parser(), args)
    log.write('process', **meta, datasets=datamodule.describe_datasets(), world_size=1,
              global_batch_size=args.batch_size, device=str(device))
    LOG.info('training %s on %s (%d train batches per epoch) on %s; writing %s', args.basenet,
             args.dataset, n_train_batches, device, out)

    def save(epoch):
        checkpoint.save(f'{out}.epoch{epoch:03d}', model, epoch=epoch, meta=meta)
        if epoch == settings.epochs:
            checkpoint.save(out, model, epoch=epoch, meta=meta)

    runner = trainer.Trainer(model, loss, optimizer, scheduler, device=device, settings=settings,
                             log=log, save_checkpoint=save, n_heads=len(model.head_metas),
                             batch_hook=debug_plots)
    try:
        runner.loop(train_loader, val_loaders)
    except losses.NonFiniteLossError as error:
        log.write('error', message=str(error))
        raise
    LOG.info('done: checkpoint %s, log %s.log', out, out)
    return out


def main(argv=None):
    args = cli(argv)
    tune_glibc_malloc()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s', datefmt='%H:%M:%S')
    try:
        run(args)
    except losses.NonFiniteLossError as error:
        print(f'openfields.train: error: {error}; the last saved checkpoint is intact', file=sys.stderr)
        sys.exit(1)
    except USER_ERRORS as error:
        print(f'openfields.train: error: {error}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('openfields.train: interrupted; the last saved checkpoint is intact', file=sys.stderr)
        sys.exit(130)


if __name__ == '__main__':
    main()

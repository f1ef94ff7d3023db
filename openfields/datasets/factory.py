"""``--dataset`` and the loader flags shared by every dataset."""

import argparse
import os

from .module import DataModule, LoaderSettings
from .registry import DATAMODULES

DEFAULT_DATASET = 'synthetic'


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('data')
    group.add_argument('--dataset', default=DEFAULT_DATASET,
                       help=f'dataset to train on, one of: {", ".join(sorted(DATAMODULES))} '
                            f'(default: {DEFAULT_DATASET}, the embedded synthetic set)')
    group.add_argument('--batch-size', type=int, default=1, help='images per batch (per process)')
    group.add_argument('--loader-workers', type=int, default=None,
                       help='data loader processes (default: min(batch size, CPU count))')
    for name in sorted(DATAMODULES):
        DATAMODULES[name].cli(parser)


def datamodule_from_args(args: argparse.Namespace) -> DataModule:
    if args.dataset not in DATAMODULES:
        if '-' in args.dataset:
            raise ValueError(f'--dataset {args.dataset}: training on several datasets at once '
                             '("a-b") is not available in this version')
        raise ValueError(f'unknown --dataset {args.dataset!r}; choose from: {", ".join(sorted(DATAMODULES))}')
    return DATAMODULES[args.dataset].from_args(args)


def loader_settings_from_args(args: argparse.Namespace, *, pin_memory: bool, shuffle: bool = True
                              ) -> LoaderSettings:
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    workers = args.loader_workers
    if workers is None:
        workers = min(args.batch_size, os.cpu_count() or 1)
    if workers < 0:
        raise ValueError(f'--loader-workers must be >= 0, got {workers}')
    return LoaderSettings(batch_size=args.batch_size, workers=workers, pin_memory=pin_memory,
                          shuffle=shuffle, seed=getattr(args, 'seed', None) or 0)

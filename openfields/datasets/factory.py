"""``--dataset`` and the loader flags shared by every dataset."""

from __future__ import annotations

import argparse
import dataclasses
import os

from .module import DataModule, LoaderSettings
from .multi import MultiDataModule
from .registry import DATAMODULES
from .weighted_counter import normalised_weights

DEFAULT_DATASET = 'synthetic'


def cli(parser: argparse.ArgumentParser, several: bool = True) -> None:
    """Data flags; ``several=False`` for CLIs that work on one dataset (no ``a-b``, no weights)."""
    group = parser.add_argument_group('data')
    group.add_argument('--dataset', default=DEFAULT_DATASET,
                       help=f'dataset to train on, one of: {", ".join(sorted(DATAMODULES))} '
                            f'(default: {DEFAULT_DATASET}, the embedded synthetic set)'
                            + ('; several joined by "-" (a-b) train one network with the heads of each'
                               if several else ''))
    if several:
        group.add_argument('--dataset-weights', nargs='+', type=float, default=None, metavar='WEIGHT',
                           help='with --dataset a-b: one positive weight per dataset (normalised; default '
                                'equal); the next batch comes from the dataset with the fewest batches '
                                'served per weight')
    group.add_argument('--batch-size', type=int, default=1, help='images per batch (per process)')
    group.add_argument('--loader-workers', type=int, default=None,
                       help='data loader processes (default: min(batch size, CPU count))')
    for name in sorted(DATAMODULES):
        DATAMODULES[name].cli(parser)


def datamodule_from_args(args: argparse.Namespace, base_stride: int) -> DataModule:
    """The DataModule of ``--dataset``, its head metas made for a basenet of stride ``base_stride``
    (:func:`openfields.network.factory.base_stride`); a :class:`MultiDataModule` for ``a-b[-c...]``."""
    names = args.dataset.split('-')
    for name in names:
        if name not in DATAMODULES:
            within = f' (in {args.dataset!r})' if len(names) > 1 else ''
            raise ValueError(f'unknown --dataset {name!r}{within}; choose from: {", ".join(sorted(DATAMODULES))}')
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'--dataset {args.dataset}: {", ".join(repeated)} named more than once')
    weights = normalised_weights(getattr(args, 'dataset_weights', None), names)
    modules = [DATAMODULES[name].from_args(args, base_stride) for name in names]
    if len(modules) == 1:
        return modules[0]
    return MultiDataModule(modules, weights)


@dataclasses.dataclass(frozen=True)
class LoaderFlags:
    """``--batch-size`` and ``--loader-workers`` (None: ``min(batch size, CPU count)``), before the run knows
    its device, seed and place in the job (:meth:`settings`)."""
    batch_size: int = 1
    workers: int | None = None

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f'--batch-size must be >= 1, got {self.batch_size}')
        if self.workers is not None and self.workers < 0:
            raise ValueError(f'--loader-workers must be >= 0, got {self.workers}')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LoaderFlags:
        return cls(batch_size=args.batch_size, workers=args.loader_workers)

    def settings(self, *, pin_memory: bool, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> LoaderSettings:
        workers = self.workers if self.workers is not None else min(self.batch_size, os.cpu_count() or 1)
        return LoaderSettings(batch_size=self.batch_size, workers=workers, pin_memory=pin_memory, shuffle=shuffle,
                              seed=seed, rank=rank, world_size=world_size)


def loader_settings_from_args(args: argparse.Namespace, *, pin_memory: bool, shuffle: bool = True
                              ) -> LoaderSettings:
    """The loader settings of the flags (the evaluation CLI's boundary; training runs hold
    :class:`LoaderFlags` in their run settings)."""
    return LoaderFlags.from_args(args).settings(pin_memory=pin_memory, shuffle=shuffle,
                                                seed=getattr(args, 'seed', None) or 0)

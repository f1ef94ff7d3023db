"""The DataModule interface: one dataset's flags, head metas and loaders.

A DataModule

* adds its own flags, all prefixed with its name (``--cocokp-square-edge``), in ``cli(parser)``;
* is built from the parsed flags and the stride of the basenet by ``from_args(args, base_stride)``
  (configuration lives on the instance; ``openfields.network.factory.base_stride(args)`` gives the stride
  before any network exists);
* owns the head metas of the heads trained on it (``head_metas``, frozen, created with ``base_stride``);
  its encoders number the targets by position in that list (``transforms.Encoders``);
* gives a ``train_loader`` and a ``val_loader`` yielding ``(images (B, 3, H, W), targets, metas)`` where
  ``targets`` holds one tensor ``(B, F, C, h, w)`` per head of this module (see docs/architecture.md),
  and ``metas[i]['dataset']`` is the module's name.

Evaluation (``openfields.eval``, and ``--eval-interval`` during training) asks for an ``eval_loader`` yielding
``(images, annotations, metas)`` and fresh ``metrics()``; ``metric_names()`` are the scores those metrics
report (their ``names``), known before anything is evaluated.

Several datasets trained at once (``--dataset a-b``) are one :class:`~openfields.datasets.multi.MultiDataModule`;
the training CLI reads validation loaders and settings per dataset through ``val_loaders`` and
``describe_datasets``, and evaluates each dataset through its own module (``dataset_modules``), which a
single module answers for itself.
"""

import argparse
import dataclasses
from typing import ClassVar

import torch

from .. import headmeta
from .sampler import ShardedSampler


@dataclasses.dataclass(frozen=True)
class LoaderSettings:
    """How batches are drawn; shared by every DataModule of a run."""

    batch_size: int = 1
    workers: int = 0
    pin_memory: bool = False
    shuffle: bool = True  # off when debugging, so the first images are the ones used
    seed: int = 0
    rank: int = 0  # this process's share of every epoch (distributed training)
    world_size: int = 1

    def sampler(self, n_samples: int, *, shuffle: bool) -> ShardedSampler:
        """The sampler of a loader over ``n_samples``: this rank's share, reshuffled by ``set_epoch``."""
        return ShardedSampler(n_samples, rank=self.rank, world_size=self.world_size,
                              shuffle=shuffle and self.shuffle, seed=self.seed)

    @property
    def worker_seed(self) -> int:
        """Seed of the loader's worker processes: different on every rank."""
        return self.seed + 1_000_003 * self.rank


class DataModule:
    """Base class of every dataset plugin's module."""

    name: ClassVar[str] = ''

    head_metas: list[headmeta.Base]

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        """Add this dataset's flags (each prefixed with ``--<name>-``)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'DataModule':
        """The module of the parsed flags; its head metas are created with ``base_stride``."""
        raise NotImplementedError

    def train_loader(self, loader: LoaderSettings) -> torch.utils.data.DataLoader:
        raise NotImplementedError

    def val_loader(self, loader: LoaderSettings) -> torch.utils.data.DataLoader:
        raise NotImplementedError

    def val_loaders(self, loader: LoaderSettings) -> dict[str, torch.utils.data.DataLoader]:
        """Validation loader per dataset name (one here)."""
        return {self.name: self.val_loader(loader)}

    def eval_loader(self, loader: LoaderSettings, long_edge: int | None = -1) -> torch.utils.data.DataLoader:
        """Evaluation images without augmentation: ``(images, annotations, metas)`` batches
        (``long_edge=-1``: the module's default size)."""
        raise NotImplementedError(f'--dataset {self.name} has no evaluation images')

    def metrics(self) -> list:
        """New metrics for one evaluation: each has ``accumulate(predictions, image_meta)``, ``stats()``,
        ``write_predictions(prefix)`` and ``names`` (the scores ``stats()`` reports)."""
        raise NotImplementedError(f'--dataset {self.name} has no metrics')

    def decoder_names(self) -> list[str] | None:
        """The decoders that suit this dataset's images when ``--decoder`` is not given (e.g. ``['cifmax']``
        for one individual per image); None: the best one for the heads."""
        return None

    def test_set(self, head_indices: list[int], settings, decoder_settings=None, *,
                 loader: LoaderSettings | None = None, names: list[str] | None = None):
        """This dataset's evaluation during training (``--eval-interval``): an object with
        ``score(network, device) -> {name: value}`` and ``names``. ``head_indices``: the network positions of
        this dataset's heads; ``settings``: :class:`openfields.metric.scoring.ScoringSettings`;
        ``decoder_settings``: None for the defaults; ``loader``: workers and memory pinning of the
        evaluation images (one per batch); ``names``: the scores, when already known (:meth:`metric_names`).

        The default decodes :meth:`eval_loader`'s images and scores them with :meth:`metrics`."""
        from ..metric import scoring  # the metrics import decoders, which a DataModule otherwise never needs
        loader = dataclasses.replace(loader or LoaderSettings(shuffle=False), batch_size=1)
        extra = {} if decoder_settings is None else {'decoder_settings': decoder_settings}
        return scoring.TestSet(self.eval_loader(loader), head_indices, self.metrics,
                               self.metric_names() if names is None else names,
                               decoder_names=self.decoder_names(), settings=settings, **extra)

    def metric_names(self) -> list[str]:
        """The scores of :meth:`metrics`, in their order, without evaluating (the default builds the
        metrics to ask them; a module whose metrics are expensive to build may override it)."""
        names = []
        for metric in self.metrics():
            declared = getattr(metric, 'names', None)
            if declared is None:
                raise ValueError(f'--dataset {self.name}: metric {type(metric).__name__} declares no `names` '
                                 '(the scores its stats() reports)')
            names += [name for name in declared if name not in names]
        return names

    def dataset_modules(self) -> dict[str, 'DataModule']:
        """The module of each dataset by name: this one here."""
        return {self.name: self}

    def describe(self) -> dict:
        """Resolved settings of this module, recorded in the training log."""
        return {}

    def describe_datasets(self) -> dict[str, dict]:
        """Resolved settings per dataset name (one here), recorded in the training log."""
        return {self.name: self.describe()}

    def write_run_files(self, checkpoint_path) -> None:
        """Before training: write what evaluating this run's checkpoints needs (a data split) next to
        ``checkpoint_path``, as ``<checkpoint_path>.<something>``. Default: nothing."""

    def use_run_files(self, checkpoint_path) -> None:
        """Before evaluating ``checkpoint_path``: read back what ``write_run_files`` wrote. Default: nothing."""

"""Training on several datasets at once: ``--dataset a-b[-c...]``.

The network carries the heads of every dataset, in the order the datasets are named. Each training batch
comes from one dataset (interleaved by :class:`~openfields.datasets.weighted_counter.WeightedCounterLoader`);
its samples carry ``meta['head_indices']``, the network positions of that dataset's heads (each module
numbers its own heads from 0; :class:`HeadOffsetLoader` shifts them past the heads of the datasets named
before it), so the trainer gives the other heads no target: the network skips them and the loss covers only
the batch's dataset. Validation and evaluation run per dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .module import DataModule, LoaderSettings
from .weighted_counter import WeightedCounterLoader


class HeadOffsetLoader:
    """A loader of ``(images, targets, metas)`` batches whose ``metas[i]['head_indices']`` are shifted by
    ``offset``; every other attribute (``sampler``, ``dataset``, ``len()``) is the wrapped loader's."""

    def __init__(self, loader, offset: int):
        self.loader = loader
        self.offset = offset

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        if name == 'loader':  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator:
        for batch in self.loader:
            if batch is not None and self.offset:
                images, targets, metas = batch
                metas = [dict(meta, head_indices=[self.offset + i for i in meta['head_indices']])
                         if 'head_indices' in meta else meta for meta in metas]
                batch = images, targets, metas
            yield batch


class MultiDataModule(DataModule):
    """Several DataModules behind one interface; ``name`` is their names joined by ``-``.

    ``head_metas`` are the modules' metas in the order of the modules: the network's heads. A module's
    loaders number its heads from 0; here they are shifted to the network's positions.
    """

    def __init__(self, modules: Sequence[DataModule], weights: Sequence[float]):
        if len(modules) != len(weights):
            raise ValueError(f'{len(weights)} weights for {len(modules)} datasets')
        self.modules = list(modules)
        self.weights = list(weights)
        self.name = '-'.join(m.name for m in self.modules)
        self.head_metas = [meta for m in self.modules for meta in m.head_metas]
        self._check_distinct_heads()
        counts = [len(m.head_metas) for m in self.modules]
        self.head_offsets = [sum(counts[:i]) for i in range(len(counts))]

    def _check_distinct_heads(self):
        owners: dict[str, str] = {}
        for module in self.modules:
            for meta in module.head_metas:
                if meta.full_name in owners:
                    raise ValueError(f'--dataset {self.name}: datasets {owners[meta.full_name]} and '
                                     f'{module.name} both have a head named {meta.full_name}; a DataModule '
                                     'sets its head metas\' dataset to its own name')
                owners[meta.full_name] = module.name

    def train_loader(self, loader: LoaderSettings) -> WeightedCounterLoader:
        return WeightedCounterLoader([HeadOffsetLoader(m.train_loader(loader), offset)
                                      for m, offset in zip(self.modules, self.head_offsets)], self.weights)

    def val_loader(self, loader: LoaderSettings):
        raise NotImplementedError(f'--dataset {self.name}: validation is per dataset, see val_loaders()')

    def val_loaders(self, loader: LoaderSettings) -> dict:
        return {m.name: HeadOffsetLoader(m.val_loader(loader), offset)
                for m, offset in zip(self.modules, self.head_offsets)}

    def eval_loader(self, loader: LoaderSettings, long_edge: int | None = -1):
        raise NotImplementedError(f'--dataset {self.name}: evaluation is per dataset, see dataset_modules()')

    def metrics(self) -> list:
        raise NotImplementedError(f'--dataset {self.name}: metrics are per dataset, see dataset_modules()')

    def metric_names(self) -> list[str]:
        """``<dataset>.<score>`` of every dataset's metrics."""
        return [f'{m.name}.{name}' for m in self.modules for name in m.metric_names()]

    def dataset_modules(self) -> dict:
        return {m.name: m for m in self.modules}

    def write_run_files(self, checkpoint_path) -> None:
        for module in self.modules:
            module.write_run_files(checkpoint_path)

    def use_run_files(self, checkpoint_path) -> None:
        for module in self.modules:
            module.use_run_files(checkpoint_path)

    def describe_datasets(self) -> dict:
        return {m.name: {**m.describe(), 'weight': w} for m, w in zip(self.modules, self.weights)}

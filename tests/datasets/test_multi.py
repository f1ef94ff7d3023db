"""MultiDataModule: the heads of every dataset, distinct by dataset, loaders per dataset."""

import pytest

from openfields import headmeta
from openfields.datasets import DataModule, LoaderSettings
from openfields.datasets.multi import MultiDataModule
from openfields.datasets.weighted_counter import WeightedCounterLoader


def batch(name: str, n_heads: int = 1):
    """A batch of one sample named ``name`` with one target per head, numbered as its module's encoders do."""
    return name, [f'target {i}' for i in range(n_heads)], [{'head_indices': list(range(n_heads))}]


def names(loader) -> list[str]:
    return [images for images, _, _ in loader]


class ListModule(DataModule):
    """A DataModule whose loaders are lists of ``n_batches`` named batches."""

    def __init__(self, name, n_batches, head_dataset=None, n_heads=1):
        self.name = name
        self.n_batches = n_batches
        self.head_metas = [headmeta.Cif(name=f'cif{i}' if i else 'cif', dataset=head_dataset or name, keypoints=['x'],
                                        sigmas=[0.1], base_stride=16) for i in range(n_heads)]

    def train_loader(self, loader):
        return [batch(f'{self.name}{i}', len(self.head_metas)) for i in range(self.n_batches)]

    def val_loader(self, loader):
        return [batch(f'{self.name}-val', len(self.head_metas))]

    def describe(self):
        return {'n_batches': self.n_batches}


def test_heads_of_every_dataset_in_order_are_the_modules_own_metas():
    a, b = ListModule('a', 4), ListModule('b', 2)
    multi = MultiDataModule([a, b], [0.5, 0.5])
    assert multi.name == 'a-b'
    assert [m.full_name for m in multi.head_metas] == ['a.cif', 'b.cif']
    assert multi.head_metas[1] is b.head_metas[0]


def test_train_loader_interleaves_by_weight_and_validation_is_per_dataset():
    multi = MultiDataModule([ListModule('a', 10), ListModule('b', 2)], [2 / 3, 1 / 3])
    train = multi.train_loader(LoaderSettings())
    assert isinstance(train, WeightedCounterLoader)
    assert names(train) == ['a0', 'b0', 'a1', 'a2', 'b1', 'a3', 'a4']
    assert {name: names(loader) for name, loader in multi.val_loaders(LoaderSettings()).items()} == \
        {'a': ['a-val'], 'b': ['b-val']}
    assert multi.describe_datasets() == {'a': {'n_batches': 10, 'weight': pytest.approx(2 / 3)},
                                         'b': {'n_batches': 2, 'weight': pytest.approx(1 / 3)}}


def test_targets_are_placed_at_the_network_positions_of_their_datasets_heads():
    """The network's heads are a's two, then b's three: b's targets go to heads 2, 3 and 4."""
    multi = MultiDataModule([ListModule('a', 1, n_heads=2), ListModule('b', 1, n_heads=3)], [0.5, 0.5])
    assert [m.full_name for m in multi.head_metas] == ['a.cif', 'a.cif1', 'b.cif', 'b.cif1', 'b.cif2']
    train = {images: metas[0]['head_indices'] for images, _, metas in multi.train_loader(LoaderSettings())}
    assert train == {'a0': [0, 1], 'b0': [2, 3, 4]}
    val = {name: next(iter(loader))[2][0]['head_indices']
           for name, loader in multi.val_loaders(LoaderSettings()).items()}
    assert val == {'a': [0, 1], 'b': [2, 3, 4]}
    assert len(multi.val_loaders(LoaderSettings())['b']) == 1


def test_a_single_module_answers_per_dataset_for_itself():
    single = ListModule('a', 3)
    assert {name: names(loader) for name, loader in single.val_loaders(LoaderSettings()).items()} == {'a': ['a-val']}
    assert single.describe_datasets() == {'a': {'n_batches': 3}}


def test_two_datasets_with_the_same_head_full_name_are_refused():
    with pytest.raises(ValueError, match='datasets a and b both have a head named a.cif'):
        MultiDataModule([ListModule('a', 1), ListModule('b', 1, head_dataset='a')], [0.5, 0.5])


class Named:
    """A metric that only declares its scores."""

    def __init__(self, *names):
        self.names = names


class ScoredModule(ListModule):
    def metrics(self):
        return [Named('AP', 'AR'), Named('AR', 'pck')]


def test_metric_names_are_declared_per_dataset_without_evaluating():
    a, b = ScoredModule('a', 1), ScoredModule('b', 1)
    assert a.metric_names() == ['AP', 'AR', 'pck']  # in order, each once
    assert a.dataset_modules() == {'a': a}
    multi = MultiDataModule([a, b], [0.5, 0.5])
    assert multi.dataset_modules() == {'a': a, 'b': b}
    assert multi.metric_names() == ['a.AP', 'a.AR', 'a.pck', 'b.AP', 'b.AR', 'b.pck']
    with pytest.raises(NotImplementedError, match='per dataset, see dataset_modules'):
        multi.metrics()


def test_a_metric_without_names_is_an_error_naming_it():
    class Unnamed(ListModule):
        def metrics(self):
            return [object()]

    with pytest.raises(ValueError, match='--dataset a: metric object declares no `names`'):
        Unnamed('a', 1).metric_names()

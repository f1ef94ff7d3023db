"""Interleave the batches of several datasets by weighted counters.

With normalised weights ``w_i`` and ``n_i`` batches served so far, the next batch comes from the dataset with
the lowest ``n_i / w_i`` (the first one on ties). The epoch ends when the dataset whose turn it is has no
batch left, so every dataset serves ``w_i / sum(w)`` of the batches to within one batch, and the smallest
dataset (relative to its weight) is used entirely. Each dataset's loader is iterated afresh every epoch, so a
shuffling loader draws a new order and, over epochs, every sample of the larger datasets is used.

Each dataset keeps its own loader and sampler: ``set_epoch(epoch)`` reaches every sampler that has one
(``torch.utils.data.DistributedSampler``), so distributed training plugs in per dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

TIE_TOLERANCE = 1e-9  # relative: counters this close are equal


def normalised_weights(weights: Sequence[float] | None, names: Sequence[str],
                       flag: str = '--dataset-weights') -> list[float]:
    """Weights summing to 1, one per dataset in ``names`` (default: equal); errors name ``flag``."""
    if weights is None:
        return [1.0 / len(names)] * len(names)
    if len(weights) != len(names):
        raise ValueError(f'{flag} needs one weight per dataset of --dataset ({", ".join(names)}), '
                         f'got {len(weights)}')
    if not all(w > 0 for w in weights):  # also refuses NaN
        raise ValueError(f'{flag}: every weight must be positive, got {" ".join(str(w) for w in weights)}')
    total = sum(weights)
    return [w / total for w in weights]


def weighted_counter_order(weights: Sequence[float], n_batches: Sequence[int]) -> list[int]:
    """Dataset index of every batch of one epoch.

    ``weights`` need not be normalised; ``n_batches[i]`` is how many batches dataset ``i`` can serve. The
    next index is ``argmin_i served_i / weights_i``; the epoch ends when that dataset has none left.
    """
    if len(weights) != len(n_batches):
        raise ValueError(f'{len(weights)} weights for {len(n_batches)} datasets')
    served = [0] * len(weights)
    order = []
    while True:
        ratios = [n / w for n, w in zip(served, weights)]
        lowest = min(ratios)
        # ties go to the first dataset, also when rounding (e.g. of normalised weights) splits them
        index = next(i for i, r in enumerate(ratios) if r <= lowest + TIE_TOLERANCE * max(lowest, 1.0))
        if served[index] >= n_batches[index]:
            return order
        served[index] += 1
        order.append(index)


class WeightedCounterLoader:
    """Batches of several loaders, one loader per batch, in :func:`weighted_counter_order`.

    ``loaders`` are sized iterables (``torch.utils.data.DataLoader``); ``len()`` is the number of batches of
    an epoch. Batches are passed through unchanged.
    """

    def __init__(self, loaders: Sequence, weights: Sequence[float]):
        if len(loaders) != len(weights):
            raise ValueError(f'{len(weights)} weights for {len(loaders)} loaders')
        self.loaders = list(loaders)
        self.weights = list(weights)

    def order(self) -> list[int]:
        return weighted_counter_order(self.weights, [len(loader) for loader in self.loaders])

    def __len__(self) -> int:
        return len(self.order())

    def set_epoch(self, epoch: int) -> None:
        """Forward to every loader's sampler that has ``set_epoch`` (distributed samplers)."""
        for loader in self.loaders:
            sampler = getattr(loader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        iterators = [iter(loader) for loader in self.loaders]
        for index in self.order():
            try:
                yield next(iterators[index])
            except StopIteration:  # a loader shorter than its len(): end the epoch there
                return

"""Weighted counters: which dataset serves the next batch, when an epoch ends, reshuffling, samplers."""

import itertools

import pytest
import torch

from openfields.datasets.weighted_counter import (WeightedCounterLoader, normalised_weights,
                                                  weighted_counter_order)


def test_next_batch_comes_from_the_lowest_served_per_weight_first_on_ties():
    # counters n/w after each step: (0, 0) tie -> 0; (1, 0) -> 1; (1, 2) -> 0; (2, 2) tie -> 0; (3, 2) -> 1 ...
    order = weighted_counter_order([1.0, 0.5], [100, 4])
    assert order == [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]


def test_epoch_ends_when_the_dataset_whose_turn_it_is_has_no_batch_left():
    # dataset 0 has 2 batches: its third turn ends the epoch although dataset 1 has 8 more
    assert weighted_counter_order([1.0, 1.0], [2, 10]) == [0, 1, 0, 1]
    assert weighted_counter_order([1.0, 1.0], [10, 2]) == [0, 1, 0, 1, 0]
    assert weighted_counter_order([1.0], [3]) == [0, 0, 0]
    assert weighted_counter_order([1.0, 1.0], [0, 5]) == []


def test_normalised_and_raw_weights_give_the_same_order():
    raw = weighted_counter_order([1.0, 0.5, 0.25], [50, 50, 6])
    normalised = weighted_counter_order(normalised_weights([1.0, 0.5, 0.25], ['a', 'b', 'c']), [50, 50, 6])
    assert raw == normalised
    # shares 4 : 2 : 1; at c's seventh turn a and b have just won their ties with it: 25 and 13, not 24 and 12
    assert [raw.count(i) for i in range(3)] == [25, 13, 6]


@pytest.mark.parametrize('weights, n_batches', [
    ([1.0, 0.5], [37, 9]), ([0.2, 0.3, 0.5], [40, 40, 11]), ([3.0, 1.0], [5, 100]), ([1.0, 1.0, 1.0], [7, 8, 9]),
])
def test_every_dataset_serves_its_weight_share_to_within_one_batch(weights, n_batches):
    order = weighted_counter_order(weights, n_batches)
    for i, (w, n) in enumerate(zip(weights, n_batches)):
        served = order.count(i)
        assert served <= n
        assert abs(served - w / sum(weights) * len(order)) <= 1.0
    exhausted = [i for i, n in enumerate(n_batches) if order.count(i) == n]
    assert exhausted  # the epoch ended because a dataset ran out


def test_weights_are_normalised_and_default_to_equal():
    assert normalised_weights([1.0, 0.5], ['cocokp', 'synthetic']) == pytest.approx([2 / 3, 1 / 3])
    assert normalised_weights(None, ['a', 'b', 'c', 'd']) == [0.25] * 4


@pytest.mark.parametrize('weights, message', [
    ([1.0], '--dataset-weights needs one weight per dataset of --dataset (a, b), got 1'),
    ([1.0, 2.0, 3.0], '--dataset-weights needs one weight per dataset of --dataset (a, b), got 3'),
    ([1.0, 0.0], '--dataset-weights: every weight must be positive'),
    ([-1.0, 2.0], '--dataset-weights: every weight must be positive'),
    ([float('nan'), 2.0], '--dataset-weights: every weight must be positive'),
])
def test_bad_weights_name_the_flag(weights, message):
    with pytest.raises(ValueError) as error:
        normalised_weights(weights, ['a', 'b'])
    assert message in str(error.value)


def numbers(dataset_name, n, seed):
    """A shuffling loader of ``n`` one-sample batches ``(dataset_name, index)``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    data = [(dataset_name, i) for i in range(n)]
    return torch.utils.data.DataLoader(data, batch_size=None, shuffle=True, generator=generator)


def test_loader_passes_batches_through_in_the_weighted_counter_order():
    loader = WeightedCounterLoader([numbers('a', 30, 0), numbers('b', 3, 0)], [2 / 3, 1 / 3])
    batches = list(loader)
    assert len(loader) == len(batches) == 10  # b's fourth turn ends the epoch
    assert [name for name, _ in batches] == ['a', 'b', 'a', 'a', 'b', 'a', 'a', 'b', 'a', 'a']
    assert sorted(i for name, i in batches if name == 'b') == [0, 1, 2]


def test_datasets_are_reshuffled_every_epoch_so_all_data_of_the_larger_one_is_used():
    loader = WeightedCounterLoader([numbers('large', 12, 1), numbers('small', 2, 1)], [0.5, 0.5])
    epochs = [[i for name, i in loader if name == 'large'] for _ in range(20)]
    assert all(len(served) == 3 for served in epochs)  # large, small, large, small, large
    assert len({tuple(served) for served in epochs}) > 1  # a new order every epoch
    assert set(itertools.chain(*epochs)) == set(range(12))


def test_set_epoch_reaches_every_datasets_distributed_sampler():
    loaders = []
    for n in (10, 6):
        data = list(range(n))
        sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0)
        loaders.append(torch.utils.data.DataLoader(data, batch_size=1, sampler=sampler))
    loader = WeightedCounterLoader(loaders, [0.5, 0.5])
    assert len(loader) == 7  # this rank's share: 5 and 3 batches -> 4 + 3
    loader.set_epoch(3)
    assert [lo.sampler.epoch for lo in loaders] == [3, 3]
    first = [int(b) for b in loader]
    loader.set_epoch(4)
    assert [int(b) for b in loader] != first

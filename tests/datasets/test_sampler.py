"""ShardedSampler: W ranks share every epoch's order; a resumed epoch continues where it stopped."""

import pytest
import torch

from openfields.datasets import LoaderSettings
from openfields.datasets.sampler import ShardedSampler, check_sharded, set_epoch, skip_batches


def batches(sampler, batch_size):
    indices = list(sampler)
    return [indices[i:i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)]


@pytest.mark.parametrize('world_size', [2, 3])
def test_batch_i_of_all_ranks_together_is_batch_i_of_one_process_with_the_global_batch(world_size):
    n_samples, batch_size = 23, 2
    single = ShardedSampler(n_samples, seed=5)
    ranks = [ShardedSampler(n_samples, rank=r, world_size=world_size, seed=5) for r in range(world_size)]
    for epoch in (1, 2):
        single.set_epoch(epoch)
        for sampler in ranks:
            sampler.set_epoch(epoch)
        per_rank = [batches(s, batch_size) for s in ranks]
        global_batches = batches(single, batch_size * world_size)
        assert len(per_rank[0]) == len(global_batches) == n_samples // world_size // batch_size
        for i, global_batch in enumerate(global_batches):
            assert sorted(sum((b[i] for b in per_rank), [])) == sorted(global_batch)


def test_ranks_partition_the_epoch_and_drop_the_same_tail():
    ranks = [ShardedSampler(10, rank=r, world_size=3, seed=1) for r in range(3)]
    shares = [list(s) for s in ranks]
    assert [len(s) for s in shares] == [3, 3, 3] and [len(s) for s in ranks] == [3, 3, 3]
    everything = sum(shares, [])
    assert len(set(everything)) == 9
    assert set(range(10)) - set(everything) == {int(ranks[0].order()[9])}


def test_each_epoch_has_its_own_order_and_the_same_seed_gives_the_same_orders():
    a, b = ShardedSampler(50, seed=3), ShardedSampler(50, seed=3)
    a.set_epoch(1)
    first = list(a)
    a.set_epoch(2)
    assert list(a) != first and sorted(list(a)) == sorted(first)
    b.set_epoch(1)
    assert list(b) == first
    assert list(ShardedSampler(50, shuffle=False)) == list(range(50))


def test_skip_continues_the_epoch_and_set_epoch_starts_over():
    sampler = ShardedSampler(20, rank=1, world_size=2, seed=9)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.skip(6)
    assert list(sampler) == full[6:] and len(sampler) == 4
    sampler.set_epoch(4)
    assert list(sampler) == full
    with pytest.raises(ValueError, match='cannot skip 11 of 10'):
        sampler.skip(11)


def test_loader_helpers_reach_the_sampler_of_a_dataloader():
    settings = LoaderSettings(batch_size=3, seed=2, rank=0, world_size=2)
    dataset = torch.arange(40)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, drop_last=True,
                                         sampler=settings.sampler(len(dataset), shuffle=True))
    set_epoch(loader, 7)
    full = [b.tolist() for b in loader]
    assert len(full) == 6
    skip_batches(loader, 2)
    assert [b.tolist() for b in loader] == full[2:]
    set_epoch(loader, 7)
    assert [b.tolist() for b in loader] == full


def test_a_mixing_loader_gets_the_calls_itself():
    calls = []

    class MixingLoader:
        def set_epoch(self, epoch):
            calls.append(('set_epoch', epoch))

        def skip_batches(self, n):
            calls.append(('skip_batches', n))

    set_epoch(MixingLoader(), 3)
    skip_batches(MixingLoader(), 5)
    assert calls == [('set_epoch', 3), ('skip_batches', 5)]


def test_loader_settings_give_each_rank_its_own_worker_seed_but_one_order():
    settings = [LoaderSettings(seed=11, rank=r, world_size=2) for r in range(2)]
    assert settings[0].worker_seed != settings[1].worker_seed
    orders = [s.sampler(30, shuffle=True).order().tolist() for s in settings]
    assert orders[0] == orders[1]
    assert not LoaderSettings(shuffle=False).sampler(5, shuffle=True).shuffle


def test_under_ddp_a_loader_that_does_not_shard_is_refused():
    dataset = torch.arange(10)
    plain = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True)
    check_sharded(plain, 1, 'single-process')  # fine without --ddp
    with pytest.raises(ValueError, match='--ddp: the squares training loader does not shard its dataset'):
        check_sharded(plain, 2, 'squares training')
    sharded = torch.utils.data.DataLoader(dataset, batch_size=2,
                                          sampler=LoaderSettings(rank=1, world_size=2).sampler(10, shuffle=True))
    check_sharded(sharded, 2, 'squares training')
